"""Interruptions lose nothing (docs/runs.md, "Interruptions" and "SLURM"): SIGTERM (SLURM
preemption), USR2 (submitit's warning before a time limit) and Ctrl-C stop the run at the next
step boundary with ``last.ckpt`` written. SIGINT and USR2 become a SIGTERM to this process, so
DDP ranks stop together at a step boundary (Lightning's ``SIGTERMException``), never inside a
step; ``SaveOnInterrupt`` writes ``last.ckpt`` there, before teardown. Requeue is submitit's
alone: after the save, ``alexlab.train.main`` hands USR2 to submitit's own handler."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SaveOnInterrupt(L.Callback):
    """Args: dirpath: where ``last.ckpt`` goes (the run's ``checkpoints/``)."""

    # what stopped the last fit in this process ("SIGTERM", "SIGINT", "SIGUSR2"), and
    # submitit's USR2 handler when that was the signal: read by alexlab.train.main
    stopped_by: str | None = None
    requeue: Any = None

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        SaveOnInterrupt.stopped_by = SaveOnInterrupt.requeue = None
        for signum in (signal.SIGINT, signal.SIGUSR2):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        SaveOnInterrupt.stopped_by = name = signal.Signals(signum).name
        previous = self._previous.get(signum)
        if signum == signal.SIGUSR2 and callable(previous):
            SaveOnInterrupt.requeue = previous  # submitit's: requeue once last.ckpt is saved
        if signum == signal.SIGINT:  # a second Ctrl-C stops at once
            signal.signal(signum, previous or signal.default_int_handler)
        rank_zero_info(f"[alexlab] {name}: saving last.ckpt at the next step boundary")
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's graceful stop, on every rank

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        SaveOnInterrupt.stopped_by = SaveOnInterrupt.stopped_by or "SIGTERM"
        trainer.save_checkpoint(self.path)
        rank_zero_info(
            f"[alexlab] {SaveOnInterrupt.stopped_by} at step {trainer.global_step}: "
            f"saved {self.path}"
        )
