"""``python train.py ARGS`` for the tests without paying torch's imports each time.

A CLI start spends most of its time importing torch, torchvision and torchmetrics (~13 s of the
15 s that ``import alexlab.train`` takes on 2 quiet CPU cores; more than most tiny runs take to
train). The server (``python zygote.py SOCKET``) does those imports once, then forks one child
per command. The child becomes what ``python SCRIPT ARGS`` would be: its own session and process
group, the caller's working directory, environment, ``PYTHONPATH``, stdout/stderr pipes and
``sys.argv``, and ``SCRIPT`` run as ``__main__`` by ``runpy`` (as ``python`` does), exiting
through the interpreter's normal shutdown. Only those imports are shared (``PRELOAD``: none of
them sets anything up from logging's state at import time); Lightning and alexlab are
imported by the child, after Hydra has set up logging, as in a fresh start. Tests about start-up
itself (what a refusal imports, ``-X importtime``) start a fresh interpreter: ``subproc.start``
sends only ``python train.py|eval.py ...`` and ``python -m alexlab....`` here, and a
``python -c CODE`` that a test opts in (``fork=True``: the bench's measuring processes).

What the child does not get from a fresh start: what the interpreter reads once at its own start
(``PYTHONHASHSEED``, so every child has the server's hash seed; ``PYTHONWARNINGS``, ``-X``
options, the stdio encoding) and what the preloaded libraries read when they load (their thread
counts, ``TORCH_LOGS``) are the server's, and its stdin is /dev/null. The tests set none of
these per command; a test that compares separate runs for exactness (the SIGKILL and DDP resumes)
starts them fresh, so that each has its own hash seed.

Python runs one thread in the server (numpy's and scipy's OpenBLAS start their own, with fork
handlers): one ``selectors`` loop over the listening socket and the SIGCHLD wake-up pipe, which
also notices when pytest is gone, however it ended, and then removes its folder and exits. Per
command: the client sends a length-prefixed JSON request with its three pipe ends; the server
forks, answers with the child's pid once the child is in its own session, and with its exit code
once it has reaped it.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import locale
import os
import runpy
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

HEADER = struct.Struct("!i")
# What a training start spends its time importing (torch 4.7 s, torchvision 5.2 s, torchmetrics
# with scipy 4.5 s on 2 quiet CPU cores), none of which sets anything up from logging's state.
# Lightning does: it gives its loggers a console handler only when the root logger has none, and a
# CLI imports it after Hydra has configured logging, so the child does too.
PRELOAD = ("torch", "torchvision", "torchmetrics", "hydra", "omegaconf", "pydantic", "PIL.Image")
_SERVER_PYTHONPATH = [
    os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
]


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the zygote closed the connection")
        data += chunk
    return data


# ---- the server ------------------------------------------------------------------------------


def _serve(path: str) -> tuple[dict, list[int]]:
    """Accept commands until this process is a forked child: -> (its request, its 3 fds)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # (a handler, so that the wake-up fd is written)
    children: dict[int, socket.socket] = {}
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    parent = os.getppid()
    while True:
        if os.getppid() != parent:  # pytest is gone, however it ended: so is this
            shutil.rmtree(Path(path).parent, ignore_errors=True)
            os._exit(0)
        for key, _ in sel.select(timeout=1.0):
            if key.fileobj is server:
                conn, _ = server.accept()
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
                (size,) = HEADER.unpack(msg[: HEADER.size])
                body = msg[HEADER.size :] + _recv_exact(conn, size - len(msg) + HEADER.size)
                ready_r, ready_w = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: its own session, then drop the server's state
                    os.setsid()  # as start_new_session=True: its own group, for os.killpg
                    os.close(ready_r)
                    os.close(ready_w)  # (the server reads EOF: the session exists)
                    sel.close()
                    for sock in (server, conn, *children.values()):
                        sock.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(wake_r)
                    os.close(wake_w)
                    return json.loads(body), fds
                os.close(ready_w)
                os.read(ready_r, 1)  # until the child is in its session (as Popen returns)
                os.close(ready_r)
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                conn.sendall(HEADER.pack(pid))
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                while children:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    conn = children.pop(pid)
                    with contextlib.suppress(OSError):
                        conn.sendall(HEADER.pack(os.waitstatus_to_exitcode(status)))
                    conn.close()


def _become(request: dict, fds: list[int]) -> None:
    """In the forked child: the process ``python SCRIPT ARGS`` (or ``python -m MODULE ARGS``)
    would have been at its start, then run it as ``__main__``."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    first, *args = request["argv"]
    module = args.pop(0) if first == "-m" else None
    code = args.pop(0) if first == "-c" else None
    script = None if module or code else str(Path(first).resolve())
    # sys.path as python builds it: the script's folder (-m: the working directory; -c: ''),
    # PYTHONPATH, then the rest
    extra = [
        os.path.abspath(p) for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    inherited = [p for p in sys.path[1:] if p not in extra and p not in _SERVER_PYTHONPATH]
    first_path = str(Path(script).parent) if script else "" if code else os.getcwd()
    sys.path[:] = [first_path, *extra, *inherited]
    sys.argv = [script or first, *args]
    if module:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    elif code is not None:  # as python -c: a __main__ module of its own, in sys.modules
        main = sys.modules["__main__"] = types.ModuleType("__main__")
        exec(compile(code, "<string>", "exec"), main.__dict__)  # (exec adds __builtins__)
    else:
        runpy.run_path(script, run_name="__main__")


# ---- the client ------------------------------------------------------------------------------


class Forked:
    """What the tests use of ``subprocess.Popen(text=True)``, for a zygote child: ``pid``,
    ``returncode``, ``communicate``, ``poll``, ``wait``, ``send_signal``, ``kill``. Its stdout
    and stderr are pipes (stderr into stdout with ``merge``, as ``stderr=STDOUT``)."""

    def __init__(
        self, sock_path: str, cmd: list[str], cwd: Path | None, env: dict, merge: bool
    ) -> None:
        self.args, self.returncode = cmd, None
        out_r, out_w = os.pipe()
        err_r, err_w = (None, out_w) if merge else os.pipe()
        request = json.dumps({"argv": cmd[1:], "cwd": str(cwd or os.getcwd()), "env": env})
        body = request.encode()
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(sock_path)
        with open(os.devnull, "rb") as devnull:
            socket.send_fds(
                self._conn, [HEADER.pack(len(body)) + body], [devnull.fileno(), out_w, err_w]
            )
        for fd in {out_w, err_w}:
            os.close(fd)
        self._out_fd, self._err_fd = out_r, err_r
        self._pipes = {fd: bytearray() for fd in (out_r, err_r) if fd is not None}
        self._open = set(self._pipes)  # (not yet read to their end)
        (self.pid,) = HEADER.unpack(_recv_exact(self._conn, HEADER.size))

    def communicate(self, timeout: float | None = None) -> tuple[str, str | None]:
        """Read stdout and stderr to their end, then wait for the exit code (within ``timeout``:
        else ``subprocess.TimeoutExpired``, and a later call goes on where this one stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for fd in self._open:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        self._pipes[key.fd] += chunk
                    else:
                        sel.unregister(key.fd)
                        self._open.discard(key.fd)
                        os.close(key.fd)
        self.wait(None if deadline is None else max(0.01, deadline - time.monotonic()))
        err = None if self._err_fd is None else _text(self._pipes[self._err_fd])
        return _text(self._pipes[self._out_fd]), err

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                (self.returncode,) = HEADER.unpack(_recv_exact(self._conn, HEADER.size))
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(0.001)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # (once reaped, its pid may be another process's)
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __del__(self) -> None:  # (as Popen's pipes close with it)
        for fd in self._open:
            os.close(fd)
        self._open.clear()
        self._conn.close()


def _text(data: bytes) -> str:
    """As ``Popen(text=True)`` reads a pipe: the locale's encoding, universal newlines."""
    encoding = locale.getpreferredencoding(False)
    return io.TextIOWrapper(io.BytesIO(bytes(data)), encoding=encoding).read()


_server: subprocess.Popen | None = None
_sock_path = ""
_lock = threading.Lock()


def start(cmd: list[str], *, cwd: Path | None, env: dict, merge: bool = False) -> Forked:
    """Fork ``cmd`` (``[python, SCRIPT, *ARGS]``) from the zygote, starting it the first time."""
    global _server, _sock_path
    with _lock:
        if _server is None or _server.poll() is not None:
            folder = tempfile.mkdtemp(prefix="alexlab-zygote-")
            _sock_path = os.path.join(folder, "sock")
            with open(os.path.join(folder, "server.log"), "wb") as log:  # (the server's now)
                _server = subprocess.Popen(
                    [sys.executable, __file__, _sock_path],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            atexit.register(stop)
            deadline = time.monotonic() + 300
            while not os.path.exists(_sock_path):
                if _server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the test zygote did not start; see {log.name}")
                time.sleep(0.05)
    return Forked(_sock_path, cmd, cwd, env, merge)


def stop() -> None:
    if _server is not None:
        _server.kill()
        _server.wait()
        shutil.rmtree(Path(_sock_path).parent, ignore_errors=True)


if __name__ == "__main__":
    import gc
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    # out of every collection, the exit's included: a collection would touch (copy) each page of
    # them in every child, and the exit's would take seconds (as cli.train's own gc.freeze says)
    gc.freeze()
    _become(*_serve(sys.argv[1]))
