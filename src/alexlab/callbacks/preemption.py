"""SIGTERM (what SLURM sends before preemption or at the time limit): save and stop cleanly.

Lightning turns SIGTERM into a ``SIGTERMException`` at the next step boundary, on every rank.
This callback writes ``last.ckpt`` there, before teardown, so the run resumes from that step.
Checkpoint files are written atomically by Lightning (a temporary file renamed into place), so
a kill during the save leaves the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SaveOnSigterm(L.Callback):
    """Args: dirpath: where ``last.ckpt`` goes (the run's ``checkpoints/``)."""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "last.ckpt"

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        trainer.save_checkpoint(self.path)
        rank_zero_info(
            f"[alexlab] SIGTERM at step {trainer.global_step}: saved {self.path}. Resume with "
            f"the same command plus ckpt_path={self.path}"
        )
