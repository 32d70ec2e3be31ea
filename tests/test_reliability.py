"""Interruptions lose nothing: a killed run resumes exactly in its own directory; a killed save
breaks nothing. (SIGTERM and Ctrl-C: tests/test_runs.py.)"""

import contextlib
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from subproc import started

from alexlab.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_a_save_killed_midway_leaves_the_previous_checkpoint_intact(
    train_cfg, tmp_path, monkeypatch
):
    summary = train(train_cfg(output_dir=tmp_path / "run"))
    last = Path(summary["last_ckpt"])
    before = last.read_bytes()

    from alexlab.run.files import AtomicCheckpointIO

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save({"half": torch.zeros(10)}, f)  # part of the file is on disk, then the end
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.randn(1000)}}, last)
    monkeypatch.undo()
    assert last.read_bytes() == before  # the old file was never touched
    torch.load(last, weights_only=True)
    names = {p.name for p in last.parent.iterdir()}
    assert {n for n in names if not n.startswith("best")} == {"last.ckpt"}  # no temp file left


def _cmd(cache_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "data.loader=torch",
        "data.num_workers=0",
        "data.batch_size=64",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "++callbacks.progress_bar=null",
        "callbacks.last_checkpoint.every_n_train_steps=1",
        "logger=csv",
        "run_name=r",
        f"paths.cache_dir={cache_dir}",
        *extra,
    ]


@pytest.mark.slow  # 65 s; the fast run: exact mid-epoch resume in-process, a killed save's files
def test_sigkill_mid_epoch_then_the_same_command_gives_the_uninterrupted_result(
    tmp_path, cache_dir, eval_cfg, monkeypatch
):
    """Deterministic CPU mode: kill -9 somewhere in epoch 2 (22 steps an epoch), run the same
    command again, and end in the same directory with the same weights, metrics and best
    checkpoint as a run never interrupted."""
    monkeypatch.setenv("ALEXLAB_TEST_FRESH", "1")  # fresh processes: each its own hash seed
    from alexlab.evaluate import evaluate

    whole_dir, killed_dir = tmp_path / "a", tmp_path / "b"
    whole_dir.mkdir()
    killed_dir.mkdir()
    with started(_cmd(cache_dir), cwd=whole_dir) as whole:
        with started(_cmd(cache_dir), cwd=killed_dir) as killed:
            step, deadline = 0, time.time() + 240
            while step < 23 and time.time() < deadline:  # wait until it is into the 2nd epoch
                time.sleep(0.05)
                for ckpt in killed_dir.glob("runs/r/checkpoints/last.ckpt"):
                    with contextlib.suppress(Exception):
                        step = torch.load(ckpt, weights_only=True)["global_step"]
            killed.kill()  # SIGKILL: no handler runs
            killed.wait()
        assert killed.returncode == -signal.SIGKILL and 23 <= step < 44
        with started(_cmd(cache_dir), cwd=killed_dir) as resumed:
            out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out[-2000:]
        whole_out, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, whole_out[-2000:]

    assert f"resumed in place from {killed_dir}/runs/r/checkpoints/last.ckpt at step {step}" in out
    assert [p.name for p in (killed_dir / "runs").iterdir()] == ["r"]  # one directory
    whole_run, killed_run = whole_dir / "runs" / "r", killed_dir / "runs" / "r"
    whole_last, resumed_last = (r / "checkpoints" / "last.ckpt" for r in (whole_run, killed_run))
    # the best checkpoint was tracked across the kill: the same file, the old one pruned
    assert sorted(p.name for p in (whole_run / "checkpoints").iterdir()) == sorted(
        p.name for p in (killed_run / "checkpoints").iterdir()
    )
    summaries = [json.loads((r / "metrics.json").read_text()) for r in (whole_run, killed_run)]
    assert summaries[0]["metrics"] == summaries[1]["metrics"]
    a = torch.load(whole_last, weights_only=True)
    b = torch.load(resumed_last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 44
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert "not resumable" not in out  # Lightning's mid-epoch warning: the loaders are resumable
    metrics = [evaluate(eval_cfg(str(p)))["metrics"] for p in (whole_last, resumed_last)]
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize("loader", ["dali", "torch"])
def test_mid_epoch_resume_is_exact_for_both_loaders(train_cfg, tmp_path, loader):
    """Killed at step 6 (mid-epoch 2 of 4 steps each), resumed: bit-identical weights."""
    same = [
        f"data.loader={loader}",
        "trainer.limit_train_batches=4",
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "callbacks.last_checkpoint.every_n_train_steps=1",
    ]
    whole = train(train_cfg(*same, output_dir=tmp_path / "whole"))
    with pytest.raises(RuntimeError, match="simulated kill at step 6"):
        train(
            train_cfg(
                *same,
                "+callbacks.die._target_=helper_callbacks.DieAtStep",
                "+callbacks.die.step=6",
                output_dir=tmp_path / "killed",
            )
        )
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train(train_cfg(*same, f"ckpt_path={last}", output_dir=tmp_path / "resumed"))
    assert not [w for w in caught if "not resumable" in str(w.message)]  # the loaders are
    a = torch.load(whole["last_ckpt"], weights_only=True)["state_dict"]
    b = torch.load(resumed["last_ckpt"], weights_only=True)["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow  # 6 two-process runs: ~4 min on 2 cores
@pytest.mark.parametrize("loader", ["dali", "torch"])
def test_mid_epoch_resume_is_exact_under_two_process_ddp(tmp_path, cache_dir, loader, monkeypatch):
    """2 gloo ranks, killed at step 6 (mid-epoch 2), resumed: the weights of a run never
    interrupted, bit for bit; each rank continues its own slice from the loader state."""
    monkeypatch.setenv("ALEXLAB_TEST_FRESH", "1")  # fresh processes: each its own hash seed
    from subproc import train_cli

    same = [
        "strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        f"data.loader={loader}",
        "data.num_workers=0",
        "data.batch_size=8",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "data.image_size=64",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "++callbacks.progress_bar=null",
        "callbacks.last_checkpoint.every_n_train_steps=1",
        f"paths.cache_dir={cache_dir}",
    ]
    helpers = [str(ROOT / "tests" / "helpers"), os.environ.get("PYTHONPATH", "")]
    env = {"PYTHONPATH": os.pathsep.join(helpers)}  # (keeps a PYTHONPATH=src of the caller)
    runs = {name: tmp_path / name for name in ("whole", "killed")}
    for path in runs.values():
        path.mkdir()
    same.append("run_name=r")
    assert train_cli(*same, cwd=runs["whole"], env=env).returncode == 0
    killed = train_cli(
        *same,
        "+callbacks.die._target_=helper_callbacks.DieAtStep",
        "+callbacks.die.step=6",
        cwd=runs["killed"],
        env=env,
    )
    assert killed.returncode != 0 and "simulated kill at step 6" in killed.stderr
    last = runs["killed"] / "runs" / "r" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 6
    resumed = train_cli(*same, cwd=runs["killed"], env=env)  # the same command: in place
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed in place from {last} at step 6" in resumed.stderr + resumed.stdout
    whole_last, resumed_last = runs["whole"] / "runs" / "r" / "checkpoints" / "last.ckpt", last
    a = torch.load(whole_last, weights_only=True)
    b = torch.load(resumed_last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert "not resumable" not in resumed.stderr + resumed.stdout  # Lightning's warning
