"""Learning-rate schedules with linear warmup, stepped once per optimizer step.

Each is a ``LambdaLR`` over a picklable ``WarmupSchedule`` (its state is plain numbers, so
checkpoints load with ``weights_only=True``). Lengths are given in epochs in the config and
converted to optimizer steps here, from ``trainer.estimated_stepping_batches``.
"""

from __future__ import annotations

import bisect
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

Kind = Literal["constant", "step", "cosine", "poly", "plateau"]


@dataclass(kw_only=True)
class WarmupSchedule:
    """Multiplier of the base lr at optimizer step ``t`` (0-based).

    1) linear warmup: ``(t + 1) / warmup_steps`` for ``t < warmup_steps`` (Goyal et al. 2017);
    2) then, with ``p`` the fraction of the remaining steps done:
       - ``constant``: 1;
       - ``step``: ``gamma ** (number of milestones <= t)`` (milestones in steps);
       - ``cosine``: ``min_factor + (1 - min_factor) * (1 + cos(pi * p)) / 2``;
       - ``poly``: ``min_factor + (1 - min_factor) * (1 - p) ** power``
         (power 2 in You et al. 2017, §5);
       - ``plateau``: ``gamma ** reductions``, where ``report()`` adds a reduction when the
         monitored metric has not improved for ``patience`` epochs, at most ``max_reductions``
         times (Krizhevsky et al. 2012 §5: lr / 10 when the validation error stops improving,
         three times in all).
    """

    kind: Kind
    total_steps: int
    warmup_steps: int = 0
    milestones: Sequence[int] = ()
    gamma: float = 0.1
    power: float = 2.0
    min_factor: float = 0.0
    monitor: str = "val/acc1"
    mode: Literal["max", "min"] = "max"
    patience: int = 5
    max_reductions: int = 3
    threshold: float = 1e-4
    # plateau state: plain numbers, so it round-trips through LambdaLR.state_dict()
    best: float | None = field(default=None, init=False)
    bad_epochs: int = field(default=0, init=False)
    reductions: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.milestones = sorted(int(m) for m in self.milestones)

    def report(self, metrics: Mapping[str, Any]) -> None:
        """Called once per epoch after validation with the logged metrics (plateau only)."""
        if self.kind != "plateau" or self.monitor not in metrics:
            return
        value = float(metrics[self.monitor])
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.threshold:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience and self.reductions < self.max_reductions:
            self.reductions += 1
            self.bad_epochs = 0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, step)
        if self.kind == "plateau":
            return self.gamma**self.reductions
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        p = min(1.0, (step - self.warmup_steps) / decay_steps)
        if self.kind == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * p))
        else:  # poly
            shape = (1.0 - p) ** self.power
        return self.min_factor + (1.0 - self.min_factor) * shape


# What a schedule learns while it runs (plateau); everything else in a WarmupSchedule is its plan.
RUN_STATE = ("best", "bad_epochs", "reductions")


class WarmupLR(LambdaLR):
    """``LambdaLR`` over ``WarmupSchedule``s whose plan is always this run's.

    A checkpoint restores the step count and the plateau state, never the plan (lengths, base
    lr): a resumed run is re-planned by ``replan`` (``alexlab.run.state.RunState`` calls it
    once the step count is restored), so an extended, shortened or re-batched run keeps a
    schedule that fits what is left of it. (A plain LambdaLR restores the old plan: the added
    epochs of an extended cosine run would train at lr 0, an lr override would be ignored.)
    """

    def __init__(self, optimizer: Optimizer, schedule: WarmupSchedule, plan: dict) -> None:
        self.plan = plan  # warmup_lr_scheduler's arguments: what replan rebuilds from
        super().__init__(optimizer, schedule)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        plans = [
            {k: v for k, v in vars(fn).items() if k not in RUN_STATE} for fn in self.lr_lambdas
        ]
        base_lrs, plan = list(self.base_lrs), self.plan  # this run's, not the checkpoint's
        # loaded one step back, then torch's own step() sets every group's lr (and
        # get_last_lr()) from this run's plan at the resumed step
        super().load_state_dict({**state_dict, "last_epoch": state_dict["last_epoch"] - 1})
        self.base_lrs, self.plan = base_lrs, plan
        for fn, own in zip(self.lr_lambdas, plans, strict=True):
            vars(fn).update(own)
        self._step_again()

    def _step_again(self) -> None:
        """Recompute the lr of the current step through torch's public ``step()``."""
        with warnings.catch_warnings():  # a step-0 checkpoint: no optimizer step to come first
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
            self.step()

    def replan(
        self, *, total_steps: int, steps_per_epoch: int, start_step: int, start_epoch: float
    ) -> float:
        """Lengths in epochs counted from the resumed point (``start_epoch`` at optimizer step
        ``start_step``) with this run's steps per epoch; returns the lr at ``start_step``."""
        fresh = _schedule(
            total_steps,
            steps_per_epoch,
            start_step=start_step,
            start_epoch=start_epoch,
            **self.plan,
        )
        for fn in {id(f): f for f in self.lr_lambdas}.values():
            vars(fn).update({k: v for k, v in vars(fresh).items() if k not in RUN_STATE})
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["initial_lr"] = base_lr
        self.last_epoch -= 1
        self._step_again()
        return self.get_last_lr()[0]


def _schedule(
    total_steps: int,
    steps_per_epoch: int,
    *,
    start_step: int = 0,
    start_epoch: float = 0.0,
    warmup_epochs: float = 0.0,
    milestones_epochs: Sequence[float] = (),
    **kwargs: Any,
) -> WarmupSchedule:
    """Epochs -> optimizer steps, counted from ``start_epoch`` at ``start_step`` (a resumed run
    may have another number of steps per epoch than the epochs before it)."""

    def at(epoch: float) -> int:
        return max(0, start_step + round((epoch - start_epoch) * steps_per_epoch))

    return WarmupSchedule(
        total_steps=total_steps,
        warmup_steps=at(warmup_epochs) if warmup_epochs else 0,
        milestones=[at(e) for e in milestones_epochs],
        **kwargs,
    )


def warmup_lr_scheduler(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    kind: Kind = "cosine",
    warmup_epochs: float = 0.0,
    milestones_epochs: Sequence[float] = (),
    **shape: Any,
) -> LambdaLR:
    """Build the schedule; ``total_steps`` and ``steps_per_epoch`` come from the trainer, the
    lengths are in epochs; ``shape``: ``WarmupSchedule``'s other arguments (gamma, plateau's)."""
    plan = dict(
        kind=kind, warmup_epochs=warmup_epochs, milestones_epochs=list(milestones_epochs), **shape
    )
    return WarmupLR(optimizer, _schedule(total_steps, steps_per_epoch, **plan), plan)


def steps_per_epoch(trainer: Any) -> int:
    """Optimizer steps in one of ``trainer``'s epochs (its batches over its accumulation)."""
    return max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))


def report_epoch_metrics(scheduler: Any, metrics: Mapping[str, Any]) -> None:
    """Hand an epoch's validation metrics to every schedule that reacts to them (plateau)."""
    # LambdaLR holds the same schedule once per param group: report to each object once
    for fn in {id(fn): fn for fn in getattr(scheduler, "lr_lambdas", [])}.values():
        if isinstance(fn, WarmupSchedule):
            fn.report(metrics)
