"""Learning-rate schedules with linear warmup, stepped once per optimizer step.

Each is a ``LambdaLR`` over a picklable ``WarmupSchedule`` (its state is plain numbers, so
checkpoints load with ``weights_only=True``). Lengths are given in epochs in the config and
converted to optimizer steps here, from ``trainer.estimated_stepping_batches``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

Kind = Literal["constant", "step", "cosine", "poly"]
KINDS = ("constant", "step", "cosine", "poly")


class WarmupSchedule:
    """Multiplier of the base lr at optimizer step ``t`` (0-based).

    1) linear warmup: ``(t + 1) / warmup_steps`` for ``t < warmup_steps`` (Goyal et al. 2017);
    2) then, with ``p`` the fraction of the remaining steps done:
       - ``constant``: 1;
       - ``step``: ``gamma ** (number of milestones <= t)`` (milestones in steps);
       - ``cosine``: ``min_factor + (1 - min_factor) * (1 + cos(pi * p)) / 2``;
       - ``poly``: ``min_factor + (1 - min_factor) * (1 - p) ** power``
         (power 2 in You et al. 2017, §5).
    """

    def __init__(
        self,
        *,
        kind: Kind,
        total_steps: int,
        warmup_steps: int = 0,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        power: float = 2.0,
        min_factor: float = 0.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"schedule.kind={kind!r} is unknown; valid: {', '.join(KINDS)}")
        self.kind = kind
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.power = float(power)
        self.min_factor = float(min_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, step)
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        p = min(1.0, (step - self.warmup_steps) / decay_steps)
        if self.kind == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * p))
        else:  # poly
            shape = (1.0 - p) ** self.power
        return self.min_factor + (1.0 - self.min_factor) * shape


def warmup_lr_scheduler(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    kind: Kind = "cosine",
    warmup_epochs: float = 0.0,
    milestones_epochs: Sequence[float] = (),
    gamma: float = 0.1,
    power: float = 2.0,
    min_factor: float = 0.0,
) -> LambdaLR:
    """Build the schedule; ``total_steps`` and ``steps_per_epoch`` come from the trainer."""
    schedule = WarmupSchedule(
        kind=kind,
        total_steps=total_steps,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        milestones=[round(e * steps_per_epoch) for e in milestones_epochs],
        gamma=gamma,
        power=power,
        min_factor=min_factor,
    )
    return LambdaLR(optimizer, schedule)
