"""Run a command as a user would, but never let it hang the test run.

The command gets its own process group; on the time limit the whole group is killed (a DDP
run's second rank and the loader workers included) and the test fails with the output so far.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import zygote

ROOT = Path(__file__).resolve().parents[2]
CLI_SCRIPTS = ("train.py", "eval.py")
TIMEOUT_S = 300  # the slowest of these commands takes ~30 s on 2 CPU cores


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = TIMEOUT_S,
    fork: bool | None = None,
) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` with a group-wide time limit
    (``fork``: as in ``start``)."""
    proc = start(cmd, cwd=cwd, env=env, stderr=subprocess.PIPE, fork=fork)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stacks = group_stacks(proc.pid)
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(cmd)} did not finish in {timeout:.0f} s (exit code {proc.returncode} "
            f"once killed); killed its process group.\n{stacks}\n"
            f"stdout tail:\n{(out or '')[-2000:]}\nstderr tail:\n{(err or '')[-4000:]}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def forkable(cmd: list[str], cwd: Path | str | None = None) -> bool:
    """Whether ``cmd`` (started in ``cwd``) is one of alexlab's commands, which the zygote can
    run."""
    if len(cmd) < 2 or cmd[0] != sys.executable:
        return False
    if cmd[1] == "-m":
        return len(cmd) > 2 and cmd[2].startswith("alexlab.")
    script = Path(cwd or os.getcwd(), cmd[1]).resolve()
    return script.parent == ROOT and script.name in CLI_SCRIPTS


def through_zygote(*, code: bool = False) -> types.ModuleType:
    """A stand-in for the ``subprocess`` module of a benchmark script that a test calls
    in-process (``monkeypatch.setattr(script, "subprocess", through_zygote())``: that script's
    name only). Its ``run(cmd, capture_output=True, text=True)`` forks alexlab's commands (with
    ``code``, also ``python -c CODE``) from the zygote; any other call runs as before."""
    stand_in = types.ModuleType("subprocess")
    stand_in.__dict__.update(vars(subprocess))

    def launch(cmd, *, cwd=None, env=None, timeout=None, **kwargs):
        check = kwargs.pop("check", False)
        simple = not check and kwargs == {"capture_output": True, "text": True}
        if simple and (forkable(cmd, cwd) or (code and cmd[:2] == [sys.executable, "-c"])):
            return run(cmd, cwd=cwd, env=env, timeout=timeout or TIMEOUT_S, fork=True)
        return subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, check=check, **kwargs)

    stand_in.run = launch
    return stand_in


@contextlib.contextmanager
def side_by_side() -> Iterator[Callable[..., Future]]:
    """``with side_by_side() as launch:`` ``launch(cmd, cwd=..., env=...)`` starts ``run(cmd)``
    at once and returns its future (``.result()``: the ``CompletedProcess``). Commands that
    spend most of their time importing torch on one core run two at a time on 2 cores instead
    of one after another; the block waits for every one of them before it ends."""
    with ThreadPoolExecutor(max_workers=8) as pool:  # threads only wait on their processes
        yield lambda cmd, **kwargs: pool.submit(run, cmd, **kwargs)


def start(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict | None = None,
    stderr: int = subprocess.STDOUT,
    fork: bool | None = None,
) -> subprocess.Popen:
    """A ``Popen`` in a new process group (stop it with ``kill_group``), output captured as text.

    ``python train.py|eval.py ...`` and ``python -m alexlab....`` are forked from a
    process that has imported torch and its libraries once (tests/helpers/zygote.py); every other
    command, and every command when ``ALEXLAB_TEST_FRESH=1``, starts a fresh interpreter.
    ``fork=True`` forks any ``python -c|-m|SCRIPT`` whose start-up is not what a test checks."""
    if fork is None:
        fork = forkable(cmd, cwd)
    if fork and os.environ.get("ALEXLAB_TEST_FRESH") != "1":
        merged = {**os.environ, **(env or {})}
        return zygote.start(cmd, cwd=cwd, env=merged, merge=stderr == subprocess.STDOUT)
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
    )


def group_stacks(pgid: int) -> str:
    """Each live process of the group: its command line and, where py-spy is installed (the dev
    extra), its Python stack, so that a hang in CI shows where each process waits."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    lines = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:300]
            lines.append(f"--- pid {proc_dir.name}: {cmdline}")
            if py_spy:
                dump = subprocess.run(
                    [py_spy, "dump", "--pid", proc_dir.name],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                lines.append((dump.stdout + dump.stderr)[-3000:])
    return "\n".join(lines) or "(no process of the group left)"


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the process's group (nothing, after a clean exit)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def started(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    stderr: int = subprocess.STDOUT,
    fork: bool | None = None,
) -> Iterator[subprocess.Popen]:
    """``start(cmd)`` for a ``with`` block; its process group is killed when the block ends."""
    proc = start(cmd, cwd=cwd, stderr=stderr, fork=fork)
    try:
        yield proc
    finally:
        kill_group(proc)


def train_cli(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` from ``cwd``."""
    return run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, timeout=timeout)


# a tiny network on the torch loader in-process: the CLI runs of the run-lifecycle tests
TINY_CLI = [
    "model.widths=[8,16,16,16,16]",
    "model.hidden=32",
    "data.image_size=64",
    "data.batch_size=16",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false",
    "++callbacks.progress_bar=null",
    "data.loader=torch",
    "data.num_workers=0",
]
