"""Interruptions lose nothing: SIGTERM saves and exits cleanly; a killed save breaks nothing."""

import contextlib
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import fsspec
import pytest
import torch
from subproc import started

from alexlab.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_sigterm_saves_last_ckpt_and_exits_cleanly(tmp_path, cache_dir):
    cmd = [sys.executable, str(ROOT / "train.py"), "model.widths=[8,16,16,16,16]", "model.hidden=32",
           "trainer.max_epochs=500", "logger=none", "trainer.enable_progress_bar=false",
           "++callbacks.progress_bar=null", f"paths.cache_dir={cache_dir}"]  # fmt: skip
    with started(cmd, cwd=tmp_path) as proc:
        deadline = time.time() + 120
        while not list(tmp_path.glob("runs/*/checkpoints/last.ckpt")) and time.time() < deadline:
            time.sleep(0.5)  # wait for the first epoch's checkpoint
        (last,) = tmp_path.glob("runs/*/checkpoints/last.ckpt")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    assert "SIGTERM at step" in out and f"ckpt_path={last}" in out
    step = int(out.split("SIGTERM at step ")[1].split(":")[0])
    ckpt = torch.load(last, weights_only=True)  # a whole, loadable checkpoint
    assert ckpt["global_step"] == step


def test_a_save_killed_midway_leaves_the_previous_checkpoint_intact(
    train_cfg, tmp_path, monkeypatch
):
    summary = train(train_cfg(output_dir=tmp_path / "run"))
    last = Path(summary["last_ckpt"])
    before = last.read_bytes()

    from lightning.fabric.utilities import cloud_io

    real_open = fsspec.implementations.local.LocalFileSystem.open

    def dying_open(self, path, mode="rb", **kwargs):
        f = real_open(self, path, mode, **kwargs)
        if "w" in mode:
            original_write = f.write

            def write(data):
                original_write(data[: len(data) // 2])
                raise KeyboardInterrupt  # the process dies half-way through the write

            f.write = write
        return f

    monkeypatch.setattr(fsspec.implementations.local.LocalFileSystem, "open", dying_open)
    with pytest.raises(KeyboardInterrupt):
        cloud_io._atomic_save({"state_dict": {"w": torch.randn(1000)}}, last)
    monkeypatch.undo()
    assert last.read_bytes() == before  # the old file was never touched
    torch.load(last, weights_only=True)
    assert not [
        p
        for p in last.parent.iterdir()
        if p.name not in {last.name} and not p.name.startswith("best")
    ]


def _cmd(cache_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "data.loader=torch", "data.num_workers=0",
           "data.batch_size=64", "model.widths=[8,16,16,16,16]", "model.hidden=32",
           "trainer.max_epochs=2", "trainer.deterministic=true", "logger=none",
           "trainer.enable_progress_bar=false", "++callbacks.progress_bar=null",
           "callbacks.last_checkpoint.every_n_train_steps=1", f"paths.cache_dir={cache_dir}", *extra]  # fmt: skip


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_result(
    tmp_path, cache_dir, eval_cfg
):
    """Deterministic CPU mode: kill -9 somewhere in epoch 2 (22 steps an epoch), resume with
    ckpt_path=last, and end with the same weights and metrics as a run never interrupted."""
    from alexlab.evaluate import evaluate

    whole_dir, killed_dir = tmp_path / "a", tmp_path / "b"
    whole_dir.mkdir()
    killed_dir.mkdir()
    with started(_cmd(cache_dir), cwd=whole_dir) as whole:
        with started(_cmd(cache_dir), cwd=killed_dir) as killed:
            step, deadline = 0, time.time() + 240
            while step < 23 and time.time() < deadline:  # wait until it is into the 2nd epoch
                time.sleep(0.05)
                for ckpt in killed_dir.glob("runs/*/checkpoints/last.ckpt"):
                    with contextlib.suppress(Exception):
                        step = torch.load(ckpt, weights_only=True)["global_step"]
            killed.kill()  # SIGKILL: no handler runs
            killed.wait()
        assert killed.returncode == -signal.SIGKILL and 23 <= step < 44
        with started(_cmd(cache_dir, "ckpt_path=last"), cwd=killed_dir) as resumed:
            out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out[-2000:]
        whole_out, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, whole_out[-2000:]

    (whole_last,) = whole_dir.glob("runs/*/checkpoints/last.ckpt")
    resumed_last = max(
        killed_dir.glob("runs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
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
    same = [f"data.loader={loader}", "trainer.limit_train_batches=4", "trainer.max_epochs=2",
            "trainer.deterministic=true", "callbacks.last_checkpoint.every_n_train_steps=1"]  # fmt: skip
    whole = train(train_cfg(*same, output_dir=tmp_path / "whole"))
    with pytest.raises(RuntimeError, match="simulated kill at step 6"):
        train(train_cfg(*same, "+callbacks.die._target_=helper_callbacks.DieAtStep",
                        "+callbacks.die.step=6", output_dir=tmp_path / "killed"))  # fmt: skip
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
def test_mid_epoch_resume_is_exact_under_two_process_ddp(tmp_path, cache_dir, loader):
    """2 gloo ranks, killed at step 6 (mid-epoch 2), resumed: the weights of a run never
    interrupted, bit for bit; each rank continues its own slice from the loader state."""
    from subproc import train_cli

    same = ["strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu", f"data.loader={loader}",
            "data.num_workers=0", "data.batch_size=8", "model.widths=[8,16,16,16,16]",
            "model.hidden=32", "data.image_size=64", "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2", "trainer.max_epochs=2", "trainer.deterministic=true",
            "logger=none", "trainer.enable_progress_bar=false", "++callbacks.progress_bar=null",
            "callbacks.last_checkpoint.every_n_train_steps=1", f"paths.cache_dir={cache_dir}"]  # fmt: skip
    helpers = [str(ROOT / "tests" / "helpers"), os.environ.get("PYTHONPATH", "")]
    env = {"PYTHONPATH": os.pathsep.join(helpers)}  # (keeps a PYTHONPATH=src of the caller)
    runs = {name: tmp_path / name for name in ("whole", "killed")}
    for path in runs.values():
        path.mkdir()
    assert train_cli(*same, cwd=runs["whole"], env=env).returncode == 0
    killed = train_cli(*same, "+callbacks.die._target_=helper_callbacks.DieAtStep",
                       "+callbacks.die.step=6", cwd=runs["killed"], env=env)  # fmt: skip
    assert killed.returncode != 0 and "simulated kill at step 6" in killed.stderr
    (last,) = runs["killed"].glob("runs/*/checkpoints/last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] == 6
    resumed = train_cli(*same, f"ckpt_path={last}", cwd=runs["killed"], env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (whole_last,) = runs["whole"].glob("runs/*/checkpoints/last.ckpt")
    resumed_last = max(
        runs["killed"].glob("runs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
    a = torch.load(whole_last, weights_only=True)
    b = torch.load(resumed_last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert "not resumable" not in resumed.stderr + resumed.stdout  # Lightning's warning
