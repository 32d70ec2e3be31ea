"""A LightningModule that records the batches it receives, for data tests through a real Trainer."""

import lightning as L
import torch


class Probe(L.LightningModule):
    """Trains nothing: keeps every train/val batch as it reached the module (CPU copies)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.train_batches: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (epoch, x, y)
        self.val_batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        images, labels = batch
        self.train_batches.append((self.current_epoch, images.detach().cpu(), labels.cpu()))
        return (self.w * 0).sum() + self.w.sum() * 0

    def validation_step(self, batch, batch_idx):
        self.val_batches.append((batch[0].cpu(), batch[1].cpu()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All train images and labels of one epoch, in the order received."""
        got = [(x, y) for e, x, y in self.train_batches if e == epoch]
        return torch.cat([x for x, _ in got]), torch.cat([y for _, y in got])


def fit(datamodule, *, epochs: int = 1, **trainer_kwargs) -> Probe:
    """Fit a Probe on ``datamodule`` with a real Trainer on the CPU; return it."""
    probe = Probe()
    settings = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    L.Trainer(**{**settings, **trainer_kwargs}).fit(probe, datamodule=datamodule)
    return probe
