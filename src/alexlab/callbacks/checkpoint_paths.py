"""Where a run's checkpoints are: the best by ``monitor`` and the latest (``last.ckpt``)."""

from __future__ import annotations

import lightning as L


def best_and_last(trainer: L.Trainer) -> tuple[str | None, str | None]:
    """``(best, last)`` paths from the run's ModelCheckpoint callbacks; None where not written.

    The callback without a monitor writes ``last.ckpt``; the monitored one keeps the best.
    """
    best = last = None
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "best_model_path", "") or None
        if getattr(callback, "monitor", None) is None:
            last = path
        else:
            best = path
    return best, last
