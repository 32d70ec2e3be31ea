"""One run per directory: a live holder refuses a second launch; a dead one's lock is taken."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from subproc import ROOT, started, train_cli
from subproc import TINY_CLI as TINY

from alexlab.run.lock import EXCL, LOCK, RunLock, RunLockedError, check_free

HOLD = """
import sys, time
from alexlab.run.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(300)
"""


def test_a_second_holder_is_refused_with_the_holders_name_then_takes_it_once_released(tmp_path):
    first = RunLock(tmp_path).acquire()
    info = json.loads((tmp_path / LOCK).read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(RunLockedError) as refused:
        RunLock(tmp_path).acquire()  # another open file description: flock refuses it
    message = str(refused.value)
    assert f"PID {os.getpid()} on {socket.gethostname()}" in message
    assert "another run_name" in message and "\n" not in message
    first.release()
    RunLock(tmp_path).acquire().release()


def test_the_lock_of_a_process_killed_with_sigkill_is_taken_over(tmp_path):
    env = {**os.environ, "SLURM_JOB_ID": "777"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"PID {holder.pid} on .*SLURM job 777"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = RunLock(tmp_path).acquire()  # the kernel released the dead holder's lock
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    lock.release()


def test_check_free_asks_a_held_lock_without_taking_it(tmp_path):
    check_free(tmp_path)  # no lock file yet
    held = RunLock(tmp_path).acquire()
    with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
        check_free(tmp_path)  # another open file description: the shared probe is refused
    held.release()
    check_free(tmp_path)  # a finished run's lock file: free
    RunLock(tmp_path).acquire().release()  # and the probe left nothing held


def test_without_flock_a_dead_holder_on_this_host_is_taken_over_another_host_refused(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = {"host": socket.gethostname(), "pid": int(dead), "slurm_job_id": None, "started": "x"}
    (tmp_path / EXCL).write_text(json.dumps(stale))
    lock = RunLock(tmp_path, use_flock=False).acquire()
    assert json.loads((tmp_path / EXCL).read_text())["pid"] == os.getpid()
    with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):  # alive: refused
        RunLock(tmp_path, use_flock=False).acquire()
    lock.release()
    assert not (tmp_path / EXCL).exists()

    other = {**stale, "host": "node-b", "pid": 1}
    (tmp_path / EXCL).write_text(json.dumps(other))
    with pytest.raises(RunLockedError, match=f"PID 1 on node-b.*delete {tmp_path / EXCL}"):
        RunLock(tmp_path, use_flock=False).acquire()


TINY_CLI = [*TINY, "logger=csv", "run_name=r"]


def _wait_for_holder(path, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.is_file() and path.read_text():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError(f"no lock holder in {path}; exit {proc.poll()}")


def test_a_second_launch_of_a_running_run_is_refused_and_touches_nothing(tmp_path, cache_dir):
    args = [*TINY_CLI, f"paths.cache_dir={cache_dir}"]
    cmd = [sys.executable, str(ROOT / "train.py"), *args, "trainer.max_epochs=500"]
    run = tmp_path / "runs" / "r"
    again = [*cmd[:-1], "trainer.max_epochs=2"]
    with started(cmd, cwd=tmp_path) as first:
        holder = _wait_for_holder(run / LOCK, first)
        assert holder["pid"] == first.pid
        with started(again, cwd=tmp_path, stderr=subprocess.PIPE) as second:
            stdout, stderr = second.communicate(timeout=300)
        assert first.poll() is None  # the first run trains on
    assert second.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if x.startswith("alexlab:")]
    assert f"{run} is in use by another run (PID {first.pid} on {socket.gethostname()}" in line
    assert "resumed" not in stdout + stderr  # it never read the first's files
    # refused before Hydra wrote anything: the first run's recorded command is its own
    overrides = (run / ".hydra" / "overrides.yaml").read_text()
    assert "trainer.max_epochs=500" in overrides and "max_epochs=2" not in overrides


@pytest.mark.slow  # 40 s; the fast run: the lock of a SIGKILLed holder is taken over
def test_after_sigkill_the_same_command_resumes_the_run(tmp_path, cache_dir):
    args = [*TINY_CLI, f"paths.cache_dir={cache_dir}"]
    cmd = [sys.executable, str(ROOT / "train.py"), *args, "trainer.max_epochs=500"]
    last = tmp_path / "runs" / "r" / "checkpoints" / "last.ckpt"
    with started(cmd, cwd=tmp_path) as first:
        deadline = time.time() + 180
        while not last.exists() and time.time() < deadline:
            time.sleep(0.3)
        first.kill()  # SIGKILL: no handler runs, the lock file stays
        first.wait()
    again = train_cli(*args, "trainer.max_epochs=3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed in place from {last}" in again.stdout + again.stderr
