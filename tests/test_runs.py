"""A run keeps one directory across interruptions, requeues and sweeps, and resumes by itself."""

import csv
import json
import math
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from subproc import ROOT, TINY_CLI, run, side_by_side, started, train_cli

from alexlab.config import ConfigError, validate_config
from alexlab.run.identity import LAUNCHED_RANKS, first_process, run_id
from alexlab.train import train


def test_run_id_is_the_name_else_the_slurm_job_else_torchruns_else_the_time(monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    assert run_id("mine") == "mine"
    assert run_id(None) != run_id(None)  # timestamp + random suffix: never shared
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun without --rdzv-id: no id
    assert run_id(None) != run_id(None)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job7")  # every rank, node and elastic restart
    assert run_id(None) == "torchrun-job7"
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert run_id(None) == "slurm-123"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")  # a requeued job keeps its job id
    assert run_id(None) == "slurm-123"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "100")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert run_id(None) == "slurm-100_7"  # SLURM's id first (torchrun inside an allocation)
    assert run_id("mine") == "mine"


def test_torchrun_without_a_rendezvous_id_needs_a_run_name(tmp_path, monkeypatch, train_cfg):
    """Its rendezvous id is "none": each process would make a run directory of its own."""
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    refused = train_cli(*TINY_CLI, cwd=tmp_path, env={"TORCHELASTIC_RUN_ID": "none"})
    assert refused.returncode == 2
    assert "run_name is unset under torchrun without --rdzv-id" in refused.stderr
    assert "--rdzv-id=<id>" in refused.stderr and "run_name=<name>" in refused.stderr
    assert not (tmp_path / "runs").exists()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    with pytest.raises(ConfigError, match="run_name is unset"):
        validate_config(train_cfg("run_name=''"))  # an empty name names nothing either
    validate_config(train_cfg("run_name=mine"))
    monkeypatch.setenv("SLURM_JOB_ID", "5")  # torchrun in a SLURM job: runs/slurm-5 for all
    validate_config(train_cfg())


def test_the_first_process_is_rank_0_on_node_0(monkeypatch):
    """Who takes the run lock, told from the environment before the Trainer exists."""
    for key in (*LAUNCHED_RANKS, "NODE_RANK", "GROUP_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert first_process()  # python train.py
    cases = [
        ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, False),  # a rank Lightning started
        ({"NODE_RANK": "1"}, False),  # node 1 of a launch by hand
        ({"NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0"}, True),  # torchrun
        ({"RANK": "9", "LOCAL_RANK": "1", "GROUP_RANK": "1"}, False),
        # torchrun's c10d numbers the nodes as they join: global rank 0 may run where the user
        # exported NODE_RANK=1 for another purpose; RANK decides
        ({"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "1", "NODE_RANK": "1"}, True),
        ({"SLURM_PROCID": "0"}, True),
        ({"SLURM_PROCID": "3"}, False),
        ({"SLURM_PROCID": "0", "NODE_RANK": "1"}, False),  # an interactive allocation by hand
        ({"JSM_NAMESPACE_RANK": "0", "NODE_RANK": "1"}, True),  # LSF: a global rank
    ]
    for env, first in cases:
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            assert first_process() == first, env


def test_nodes_started_by_hand_train_one_run_in_one_directory(tmp_path):
    """Lightning's plain multi-node launch (MASTER_ADDR, MASTER_PORT, NODE_RANK on each node),
    two nodes of one CPU process each on this machine: node 1 starts while node 0 holds the run
    lock, and the run is one directory. Without run_name, node 1 is refused before any work."""
    args = [*TINY_CLI, "logger=csv", "strategy=ddp", "trainer.num_nodes=2", "trainer.max_epochs=1"]
    refused = train_cli(*args, cwd=tmp_path, env={"NODE_RANK": "1"})
    assert refused.returncode == 2
    assert "run_name is unset for a run on trainer.num_nodes=2 nodes" in refused.stderr
    assert not (tmp_path / "runs").exists()
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, str(ROOT / "train.py"), *args, "run_name=two-nodes"]
    with side_by_side() as launch:
        nodes = [
            launch(
                cmd,
                cwd=tmp_path,
                env={"MASTER_ADDR": "localhost", "MASTER_PORT": str(port), "NODE_RANK": str(n)},
            )
            for n in (0, 1)
        ]
    for node in nodes:
        assert node.result().returncode == 0, node.result().stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert run_dir.name == "two-nodes" and summary["world_size"] == 2
    assert summary["global_step"] == 3


@pytest.mark.slow  # 25 s: two fresh ranks; the fast run: the run id and the refusal
def test_torchrun_ranks_share_one_run_directory(tmp_path, monkeypatch):
    """As docs/scale-out.md launches it: every rank names runs/torchrun-<rendezvous id>."""
    torchrun = Path(sys.executable).with_name("torchrun")
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)  # (inside a SLURM job: runs/slurm-<job id>)
    done = run(
        [
            str(torchrun),
            "--nproc-per-node=2",
            "--rdzv-backend=c10d",
            "--rdzv-endpoint=localhost:0",
            "--rdzv-id=exp1",
            str(ROOT / "train.py"),
            "strategy=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "logger=csv",
            *TINY_CLI,
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name == "torchrun-exp1"
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["world_size"] == 2 and (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow  # 55 s; the fast run: run ids under SLURM, USR2 -> save -> submitit hand-off
def test_a_requeued_slurm_job_resumes_in_its_directory_with_the_same_wandb_run(tmp_path, cache_dir):
    """The same command under a simulated SLURM job: 1 epoch, then the requeued job (restart
    count 1) asked for 2. One directory, one W&B run id, metrics.csv continued, the second
    epoch trained at a non-zero lr (the cosine schedule re-planned, not restored at its end)."""
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_ARRAY_JOB_ID": "4240",
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURM_RESTART_COUNT": "0",
        "HOME": str(tmp_path),
        "WANDB_API_KEY": "",
        "WANDB_MODE": "",
    }
    args = [*TINY_CLI, "logger=many", "trainer.log_every_n_steps=1", f"paths.cache_dir={cache_dir}"]
    first = train_cli(*args, "trainer.max_epochs=1", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "slurm-4240_2"
    ckpt1 = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    wandb_id = ckpt1["alexlab"]["logger_versions"]["WandbLogger"]

    env["SLURM_RESTART_COUNT"] = "1"
    second = train_cli(*args, "trainer.max_epochs=2", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    out = second.stdout + second.stderr
    assert f"resumed in place from {run}/checkpoints/last.ckpt at step 3" in out
    assert "lr schedule re-planned from step 3: 3 steps left (3 per epoch), 6 in all" in out
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["slurm-4240_2"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["epochs"] == 2
    assert metrics["resumed_from_step"] == 3
    ckpt2 = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt2["alexlab"]["logger_versions"]["WandbLogger"] == wandb_id
    assert {p.name.rsplit("-", 1)[1] for p in (run / "wandb").glob("offline-run-*")} == {wandb_id}

    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    lrs = {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}
    assert {0, 1, 2} <= set(lrs) and {3, 4, 5} <= set(lrs)  # both jobs' rows, one file
    assert all(lrs[s] > 0 for s in (3, 4, 5))  # the added epoch trains
    assert {0, 1} <= {int(r["epoch"]) for r in rows if r.get("val/acc1")}  # each job's val

    # resume=never on the used directory: one paragraph, nothing touched
    never = train_cli(*args, "resume=never", cwd=tmp_path, env=env)
    assert never.returncode == 2 and "Traceback" not in never.stderr
    assert "resume=never" in never.stderr and len(never.stderr.strip().splitlines()) <= 6
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


@pytest.mark.slow  # 35 s; the fast run: sweep job directories, resume=auto in place
def test_a_relaunched_sweep_job_resumes_its_own_checkpoint(tmp_path, cache_dir):
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "run_name=sw",
        "optimizer.lr=0.01,0.02",
        *TINY_CLI,
        "trainer.max_epochs=10",
        "logger=none",
        "callbacks.last_checkpoint.every_n_train_steps=1",
        f"paths.cache_dir={cache_dir}",
    ]
    sweep = tmp_path / "runs" / "multirun" / "sw"
    with started(cmd, cwd=tmp_path) as proc:
        step, deadline = 0, time.time() + 240
        while step < 5 and time.time() < deadline:  # job 1 is a few steps in
            time.sleep(0.2)
            for ckpt in sweep.glob("1/checkpoints/last.ckpt"):
                try:
                    step = torch.load(ckpt, weights_only=True)["global_step"]
                except Exception:
                    continue
        proc.kill()
        proc.wait()
    assert 5 <= step < 30
    job0 = torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert job0["global_step"] == 30  # job 0 finished: 10 epochs x 3 steps

    again = train_cli(*cmd[2:], cwd=tmp_path)  # the same command again
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout + again.stderr
    assert f"resumed in place from {sweep}/0/checkpoints/last.ckpt at step 30" in out
    assert f"resumed in place from {sweep}/1/checkpoints/last.ckpt" in out
    for job, lr in (("0", 0.01), ("1", 0.02)):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["global_step"] == 30 and metrics["lr"] == lr


def test_resume_never_and_contradicting_overrides_are_refused(train_cfg, tmp_path):
    out = tmp_path / "run"
    train(train_cfg(output_dir=out))
    with pytest.raises(ConfigError, match=r"resume=never, but .* already holds checkpoints"):
        train(train_cfg("resume=never", output_dir=out))
    with pytest.raises(ConfigError, match=r"other identity settings \(model.hidden 32 -> 64\)"):
        train(train_cfg("model.hidden=64", output_dir=out))
    with pytest.raises(ConfigError, match=r"optimizer._target_ '.*SGD' -> '.*AdamW'"):
        train(train_cfg("optimizer=adamw", output_dir=out))
    with pytest.raises(ConfigError, match=r"ckpt_path=last is gone"):
        train(train_cfg("ckpt_path=last", output_dir=tmp_path / "other"))
    with pytest.raises(ConfigError, match=r"starts a new run, but .* already holds checkpoints"):
        train(train_cfg(f"ckpt_path={tmp_path}/other/x.ckpt", output_dir=out))


def test_a_finished_run_extended_trains_the_added_epoch_at_a_nonzero_lr(train_cfg, tmp_path):
    out = tmp_path / "run"
    first = train(train_cfg(output_dir=out))
    assert first["global_step"] == 3
    second = train(
        train_cfg(
            "trainer.max_epochs=2",
            "+callbacks.lrs._target_=helper_callbacks.RecordLr",
            f"+callbacks.lrs.path={out}/lrs.pt",
            output_dir=out,
        )
    )
    assert second["global_step"] == 6 and second["resumed_from_step"] == 3
    lrs = torch.load(out / "lrs.pt", weights_only=True)
    # cosine over 6 steps from 0.01, evaluated at steps 3, 4, 5: the new plan, never 0
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * s / 6)) for s in (3, 4, 5)]
    assert lrs == pytest.approx(expected)


def test_temp_files_of_a_killed_save_are_removed_at_the_next_start(train_cfg, tmp_path):
    out = tmp_path / "run"
    train(train_cfg(output_dir=out))
    stray = out / "checkpoints" / ".last.ckpt.tmp-99999"
    stray.write_bytes(b"half a checkpoint")
    train(train_cfg("trainer.max_epochs=2", output_dir=out))
    assert not stray.exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")) == []


def stop_with(
    signum: int, cmd: list[str], cwd: Path, last: Path, fork: bool | None = None
) -> tuple[int, str]:
    """Starts ``cmd``, sends ``signum`` once ``last`` is written and the run is into the next
    epoch; its exit status and output."""
    with started(cmd, cwd=cwd, fork=fork) as proc:
        deadline = time.time() + 120
        while not last.exists() and time.time() < deadline:
            time.sleep(0.2)  # wait for the first epoch's checkpoint
        time.sleep(0.2)  # into the next epoch
        proc.send_signal(signum)  # to the training process only, as `kill` would
        out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


USR2_TEST = "test_usr2_saves_at_a_step_boundary_then_hands_over_to_submitit"


@pytest.fixture(scope="module")
def usr2_run(request, tmp_path_factory, cache_dir, digits_root):
    """The USR2 test's run, started with the SIGTERM test (when selected) and run beside it: a
    CLI start is mostly imports on one core. Yields the future of (exit status, output, its
    working directory)."""
    if not any(
        item.originalname == USR2_TEST
        for item in request.session.items
        if item.path == request.path
    ):
        yield None
        return
    cwd = tmp_path_factory.mktemp("usr2")
    (cwd / "fake_submitit.py").write_text(FAKE_SUBMITIT)
    cmd = [
        sys.executable,
        "fake_submitit.py",
        str(ROOT / "train.py"),
        *TINY_CLI,
        "logger=none",
        "run_name=q",
        "trainer.max_epochs=500",
        f"paths.cache_dir={cache_dir}",
    ]
    last = cwd / "runs" / "q" / "checkpoints" / "last.ckpt"
    with ThreadPoolExecutor(1) as pool:
        # forked like train.py itself: the stand-in's handler is set in the child, before
        # alexlab's, as submitit sets its own
        stop = pool.submit(lambda: (*stop_with(signal.SIGUSR2, cmd, cwd, last, fork=True), cwd))
        yield stop


EPOCHS_AGAIN = 10  # the resumed run's max_epochs (3 steps each): the first stops well before


# Ctrl-C: slow (30 s); it becomes the same graceful SIGTERM stop, tested here in the fast run
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_sigterm_and_ctrl_c_save_then_the_same_command_continues(
    tmp_path, cache_dir, signum, usr2_run
):  # (usr2_run: the USR2 test's run starts here, beside this one)
    args = [*TINY_CLI, "logger=none", "run_name=r", f"paths.cache_dir={cache_dir}"]
    cmd = [sys.executable, str(ROOT / "train.py"), *args, "trainer.max_epochs=500"]
    run = tmp_path / "runs" / "r"
    last = run / "checkpoints" / "last.ckpt"
    returncode, out = stop_with(signum, cmd, tmp_path, last)
    saved = torch.load(last, weights_only=True)["global_step"]  # whole, loadable
    again = train_cli(*args, f"trainer.max_epochs={EPOCHS_AGAIN}", cwd=tmp_path)  # the same again
    out_again = again.stdout + again.stderr
    name = signal.Signals(signum).name
    assert returncode == (130 if signum == signal.SIGINT else 0), out[-2000:]
    assert f"{name} at step" in out and "Traceback" not in out
    assert "the same command with run_name=r" in out
    step = int(out.split(f"{name} at step ")[1].split(":")[0])
    assert saved == step
    assert not list(Path("/tmp").glob("tmp*ckpt*"))
    assert step < 3 * EPOCHS_AGAIN, f"stopped at step {step}: nothing left to continue"
    assert again.returncode == 0, out_again[-3000:]
    assert f"resumed in place from {last} at step {step}" in out_again
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 3 * EPOCHS_AGAIN


FAKE_SUBMITIT = """
import runpy, signal, sys, torch
from pathlib import Path

def requeue(signum, frame):  # stands in for submitit's USR2 handler: requeue, then exit
    last = Path("runs/q/checkpoints/last.ckpt")
    Path("requeued").write_text(str(torch.load(last, weights_only=True)["global_step"]))
    sys.exit(-1)

signal.signal(signal.SIGUSR2, requeue)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_usr2_saves_at_a_step_boundary_then_hands_over_to_submitit(usr2_run):
    """The SLURM time-limit path: USR2 -> stop at the next step -> last.ckpt -> submitit's own
    handler (here a stand-in installed before alexlab, as submitit does) requeues and exits."""
    returncode, out, cwd = usr2_run.result()
    last = cwd / "runs" / "q" / "checkpoints" / "last.ckpt"
    assert returncode == 255, out[-2000:]  # submitit's sys.exit(-1)
    assert "SIGUSR2 at step" in out and "handing over to submitit" in out
    step = int(out.split("SIGUSR2 at step ")[1].split(":")[0])
    # the handler ran after the save: it read the checkpoint of the step the run stopped at
    assert (cwd / "requeued").read_text() == str(step)
    assert torch.load(last, weights_only=True)["global_step"] == step
