"""One run per directory: ``<run dir>/run.lock``, held by the live training process.

``fcntl.flock`` on an open descriptor: the kernel (or the NFSv4 server) releases it when the
holder dies, however it dies, so a requeued job takes a dead job's lock without a word. The file
says who holds it, for the refusal message; its content never decides. Where ``flock`` is
unavailable, ``run.lock.excl`` created with ``O_EXCL`` stands in (docs/runs.md, "One live
process per directory")."""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from alexlab.config import ConfigError

LOCK = "run.lock"
EXCL = "run.lock.excl"
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class RunLockedError(ConfigError):
    """Another live process trains in this run directory."""

    kind = "run in use"


def holder_info() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _refuse(run_dir: Path, info: dict, extra: str = "") -> RunLockedError:
    job = f", SLURM job {info['slurm_job_id']}" if info.get("slurm_job_id") else ""
    return RunLockedError(
        f"{run_dir} is in use by another run (PID {info.get('pid')} on {info.get('host')}{job}, "
        f"since {info.get('started')}). One run trains in a directory at a time: wait for it to "
        f"finish (or stop it; a requeued job takes over once it is gone), or start this one "
        f"under another run_name.{extra}"
    )


class RunLock:
    """``RunLock(run_dir).acquire()`` or ``RunLockedError``; released by ``release()``, at exit,
    or by the kernel when the process dies. ``use_flock=False`` forces the fallback."""

    def __init__(self, run_dir: Path, *, use_flock: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.use_flock = use_flock
        self.fd: int | None = None
        self.excl: Path | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK
        if self.use_flock:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _refuse(self.run_dir, _read(path)) from None
            except OSError as e:
                os.close(fd)
                if e.errno not in NO_FLOCK:
                    raise
            else:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(holder_info()).encode())
                self.fd = fd
                return self
        path = self.run_dir / EXCL
        for _ in range(2):  # a second try after removing a dead holder's file
            try:
                with open(path, "x") as f:  # O_CREAT | O_EXCL
                    json.dump(holder_info(), f)
            except FileExistsError:
                info = _read(path)
                if _stale(info):
                    path.unlink(missing_ok=True)
                    continue
                hint = (
                    f" (flock is unavailable on this filesystem, so a holder on another host "
                    f"cannot be checked: if that job is gone, delete {path}.)"
                )
                raise _refuse(self.run_dir, info, hint) from None
            self.excl = path
            atexit.register(self.release)
            return self
        raise _refuse(self.run_dir, _read(path))

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the file stays: removing it would race with a new holder
            self.fd = None
        if self.excl is not None:
            self.excl.unlink(missing_ok=True)
            self.excl = None


def check_free(run_dir: Path) -> None:
    """``RunLockedError`` when a live run holds ``run_dir`` now, taking nothing: the Hydra
    callback asks before Hydra writes its ``.hydra/`` and log there (``acquire`` still decides)."""
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file yet (or unreadable: acquire says so)
        return
    try:
        # shared: it conflicts only with a holder's exclusive lock, and NFS grants it on a
        # read-only descriptor (an exclusive one there needs the file open for writing)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        raise _refuse(run_dir, _read(path)) from None
    except OSError as e:
        if e.errno not in NO_FLOCK:
            return  # acquire meets it and says so
    finally:
        os.close(fd)  # (releases the probe)
    info = _read(run_dir / EXCL)  # no flock here: acquire's fallback file decides
    if info and not _stale(info):
        raise _refuse(run_dir, info)


def _stale(info: dict) -> bool:
    """The fallback file's holder died on this host."""
    if info.get("host") != socket.gethostname():
        return False
    if not isinstance(pid := info.get("pid"), int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process: alive
    return False
