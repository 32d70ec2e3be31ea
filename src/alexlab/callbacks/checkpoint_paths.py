"""Where a run's checkpoints are: the best by ``monitor`` and the latest (``last.ckpt``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L


def best_and_last(trainer: L.Trainer) -> tuple[str | None, str | None]:
    """``(best, last)`` paths from the run's ModelCheckpoint callbacks; None where not written.

    The callback without a monitor writes ``last.ckpt``; the monitored one keeps the best.
    (Under ``ddp_spawn`` the training ran in child processes and Lightning hands back only the
    first callback's path: the latest is then found where its callback writes it.)
    """
    best = last = None
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "best_model_path", "") or None
        if getattr(callback, "monitor", None) is None:
            written = Path(callback.format_checkpoint_name({}))
            last = path or (str(written) if written.is_file() else None)
        else:
            best = path
    return best, last
