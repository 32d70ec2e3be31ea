"""A run's checkpoint files: how they are written, which one a run resumes from (docs/runs.md,
"Checkpoints that survive").

``AtomicCheckpointIO`` writes each checkpoint beside its target as ``.<name>.tmp-<pid>`` and
renames it into place, so readers never see a part (Lightning's own writer stages it in the system
temp directory: 70+ MB left in /tmp per killed save; ``clean_temp_files`` removes a killed
write's), and keeps the ``last.ckpt`` it replaces as ``last-previous.ckpt``, for when a later
``last.ckpt`` is damaged (a full disk, a copy cut short)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO

LAST = "last.ckpt"
PREVIOUS = "last-previous.ckpt"
TEMP_GLOB = ".*.tmp-*"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            torch.save(checkpoint, tmp)
            if path.name == LAST and path.is_file():
                os.replace(path, path.with_name(PREVIOUS))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # an exception mid-write: no stray file


def clean_temp_files(checkpoints: Path) -> None:
    """Remove what an interrupted checkpoint write left beside its target."""
    for path in checkpoints.glob(TEMP_GLOB):  # none when the folder does not exist
        path.unlink(missing_ok=True)


def candidates(checkpoints: Path) -> list[Path]:
    """The run's checkpoints, the one to resume from first: ``last.ckpt``, the previous last,
    then the others newest first."""
    ranked = {LAST: 0, PREVIOUS: 1}
    files = [p for p in checkpoints.glob("*.ckpt") if p.is_file()]
    return sorted(files, key=lambda p: (ranked.get(p.name, 2), -p.stat().st_mtime))


def best_and_last(trainer: L.Trainer) -> tuple[str | None, str | None]:
    """``(best, last)`` paths from the run's ModelCheckpoint callbacks (the monitored one keeps the
    best, the other writes ``last.ckpt``); None where not written. The latest is looked for where
    its callback writes it first: a restored callback may remember another directory's path (a run
    copied, moved or started from another run's checkpoint), and under ``ddp_spawn`` Lightning
    hands back only the first callback's path (the training ran in child processes)."""
    best = last = None
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "best_model_path", "") or None
        if getattr(callback, "monitor", None) is None:
            written = Path(callback.format_checkpoint_name({}))
            last = str(written) if written.is_file() else path
        else:
            best = path
    return best, last
