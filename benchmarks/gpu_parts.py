"""The pieces of ``gpu_check.py`` that run elsewhere: the host-sync counter (a callback that
``python train.py`` loads by name) and the data tree written over every core.

Imports nothing beyond torch, Lightning and alexlab, so it runs under the GPU machine's bare
set-up (``docs/gpu.md``).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from alexlab.data import fake_imagenet
from alexlab.loggers import logger_step

SYNC_WARNING = "synchronizing"  # torch's sync debug mode: "called a synchronizing CUDA operation"


class HostReads(TorchDispatchMode):
    """Counts ``aten._local_scalar_dense`` (what ``.item()``, ``float(t)``, ``.tolist()`` run): a
    host read that waits for the device. The CPU's stand-in for CUDA's sync debug mode."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class SyncCheck(L.Callback):
    """Host syncs per training step, written to ``out`` (JSON) when training ends.

    On a GPU: ``torch.cuda.set_sync_debug_mode("warn")`` and the warnings it raises; on a CPU:
    host reads of tensor values (``HostReads``). Each batch is charged with what ran from its
    start to the next batch's start (its step, the callbacks, the loggers, the next batch's
    loading); an epoch's last batch is not charged (its window holds the validation).
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _count(self) -> int:
        if self.cuda:
            return sum(SYNC_WARNING in str(w.message) for w in self.caught)
        return self.reads.count

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.cuda, self.windows, self.open = trainer.strategy.root_device.type == "cuda", [], None
        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")  # every sync, not the first per line
        self.reads = HostReads()
        if self.cuda:
            torch.cuda.set_sync_debug_mode("warn")
        else:
            self.reads.__enter__()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.open = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.open is not None:
            self.open["syncs"] = self._count() - self.open["syncs"]
            self.windows.append(self.open)
        self.open = {
            "step": trainer.global_step + 1,
            "logs": logger_step(trainer, done=False),
            "syncs": self._count(),
        }

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode("default")
        else:
            self.reads.__exit__(None, None, None)
        self._catch.__exit__(None, None, None)
        quiet = [w for w in self.windows if not w["logs"]]
        summary = {
            "how": "torch.cuda.set_sync_debug_mode('warn')"
            if self.cuda
            else "host reads of tensor values (aten._local_scalar_dense), the CPU's stand-in",
            "steps": len(self.windows),
            "quiet_steps": len(quiet),
            "syncs_on_quiet_steps": sum(w["syncs"] for w in quiet),
            "syncs_on_logging_steps": sum(w["syncs"] for w in self.windows if w["logs"]),
            "windows": self.windows,
        }
        if trainer.global_rank == 0:
            self.out.write_text(json.dumps(summary, indent=1))


def _write_images(args: tuple) -> None:
    folder_root, split, c, start, stop, classes, seed, sizes = args
    rng = np.random.default_rng([seed, c, start])  # a stream per chunk: the same tree for any jobs
    folder = folder_root / split / f"n{c:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, stop):
        fake_imagenet._image(rng, c, classes, sizes).save(
            folder / f"{split}_{c:04d}_{i:05d}.JPEG", quality=90
        )


def write_tree(
    root: Path,
    *,
    classes: int,
    per_class: int,
    val_per_class: int,
    sizes: str = "imagenet",
    jobs: int = 1,
    seed: int = 0,
    chunk: int = 25,
) -> Path:
    """``fake-imagenet``'s images (``alexlab.data.fake_imagenet``), ``chunk`` images per task over
    ``jobs`` processes; written beside ``root`` and renamed into place."""
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    work = [
        (tmp, split, c, start, min(start + chunk, count), classes, seed, sizes)
        for split, count in (("train", per_class), ("val", val_per_class))
        for c in range(classes)
        for start in range(0, count, chunk)
    ]
    try:
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                list(pool.map(_write_images, work))
        else:
            for item in work:
                _write_images(item)
        tmp.rename(root)
    finally:  # a failure (or Ctrl-C) leaves no temporary folder behind
        shutil.rmtree(tmp, ignore_errors=True)
    return root
