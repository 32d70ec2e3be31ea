"""Batch-size arithmetic: per-device batch, world size, gradient accumulation, scaled lr."""

from __future__ import annotations

from alexlab.config import ConfigError


def accumulation_steps(*, global_batch_size: int | None, batch_size: int, world_size: int) -> int:
    """Micro-batches per optimizer step so that one step sees ``global_batch_size`` images
    (None: no accumulation, the global batch is ``batch_size * world_size``)."""
    if global_batch_size is None:
        return 1
    per_step = batch_size * world_size
    if global_batch_size % per_step:
        fits = (b for b in range(batch_size, 0, -1) if global_batch_size % (b * world_size) == 0)
        raise ConfigError(
            f"data.global_batch_size={global_batch_size} is not a multiple of data.batch_size="
            f"{batch_size} x {world_size} device(s) = {per_step}. Pick a per-device batch that "
            f"divides it, e.g. data.batch_size={next(fits, 1)}."
        )
    return global_batch_size // per_step


def scaled_lr(base_lr: float, *, global_batch_size: int, reference_batch_size: int = 256) -> float:
    """The linear scaling rule (Goyal et al. 2017, §2.1): lr grows with the global batch."""
    return base_lr * global_batch_size / reference_batch_size
