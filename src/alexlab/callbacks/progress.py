"""A Rich progress bar that reads logged values on the host only where the loggers do: Lightning's
``RichProgressBar`` refreshes after every training batch, reading ``trainer.progress_bar_metrics``,
which converts every cached ``prog_bar`` tensor to a number (``.item()``: the host waits for the
GPU). So the module logs its step values without ``prog_bar`` and this bar shows them (``show``),
re-read only on the logger's steps and at epoch and validation ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from alexlab.loggers import logger_step


class LoggedStepsProgressBar(RichProgressBar):
    """Args: ``RichProgressBar``'s, and ``show``: values logged without ``prog_bar`` to show too."""

    def __init__(self, *args: Any, show: Sequence[str] = ("train/loss",), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.show = list(show)
        self._shown: dict[str, Any] = {}
        self._frozen = False  # True inside a training batch that does not log
        self._last_step = -1

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        if not self._frozen:
            shown = super().get_metrics(trainer, pl_module)
            logged = trainer.callback_metrics
            shown |= {name: float(logged[name]) for name in self.show if name in logged}
            self._shown = shown
        return self._shown

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stepped, self._last_step = trainer.global_step != self._last_step, trainer.global_step
        self._frozen = not (stepped and logger_step(trainer, done=True))
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._frozen = False
