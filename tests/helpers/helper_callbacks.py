"""Test-only callbacks: per-rank train/val metrics (DDP test), a simulated kill (resume test),
the lr of each step (schedule re-planning test)."""

import json
from pathlib import Path

import lightning as L


class RankMetricsDump(L.Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The last epoch's train and val metrics as this rank logged them."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        values = {k: float(v) for k, v in trainer.callback_metrics.items()
                  if k.startswith(("val/", "train/"))}  # fmt: skip
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(values))


class DieAtStep(L.Callback):
    """Stands in for a kill: raises at the start of optimizer step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated kill at step {self.step}")


class RecordLr(L.Callback):
    """The lr each optimizer step of this fit trains at, saved to ``path`` at the end."""

    def __init__(self, path: str) -> None:
        self.path, self.lrs = Path(path), []

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        torch.save(self.lrs, self.path)
