"""Interruptions lose nothing: SIGTERM saves and exits cleanly; a killed save breaks nothing."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import torch

from alexlab.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_sigterm_saves_last_ckpt_and_exits_cleanly(tmp_path, cache_dir):
    cmd = [sys.executable, str(ROOT / "train.py"), "model.widths=[8,16,16,16,16]", "model.hidden=32",
           "trainer.max_epochs=500", "logger=none", "trainer.enable_progress_bar=false",
           "++callbacks.progress_bar=null", f"paths.cache_dir={cache_dir}"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
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
