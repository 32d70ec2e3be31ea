"""Test-only callback (``rng_dump.RankRng``): gives each rank its own RNG stream at the start of
training, and writes each rank's CPU RNG state as the checkpoint is built."""

from pathlib import Path

import lightning as L
import torch


class RankRng(L.Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.rand(trainer.global_rank + 1)  # the ranks' streams part here

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        torch.save(torch.get_rng_state(), self.dirpath / f"rank{trainer.global_rank}.pt")
