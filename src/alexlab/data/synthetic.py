"""Random batches made once on the device: the compute ceiling, with no input pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch


@dataclass(kw_only=True, eq=False)
class SyntheticLoader:
    """Yields the same ``(images, labels)`` batch ``steps`` times; made on ``device`` at the
    first ``iter()``, so nothing is decoded, copied or transferred per step."""

    steps: int
    shape: tuple[int, int, int, int]  # of the images: (B, 3, S, S)
    num_classes: int
    device: torch.device
    seed: int = 0
    _batch: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._batch is None:
            g = torch.Generator(device="cpu").manual_seed(self.seed)
            images = torch.randn(self.shape, generator=g)
            labels = torch.randint(0, self.num_classes, self.shape[:1], generator=g)
            self._batch = (images.to(self.device), labels.to(self.device))
        for _ in range(self.steps):
            yield self._batch


class SyntheticDataModule(L.LightningDataModule):
    """Random data for throughput: ``steps_per_epoch`` train and ``val_steps`` val batches. The
    arguments are the ``data.*`` settings of ``alexlab.config.schema.SyntheticData``."""

    has_test = False

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        batch_size: int = 256,
        global_batch_size: int | None = None,
        image_size: int = 224,
        steps_per_epoch: int = 100,
        val_steps: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes, self.batch_size = num_classes, batch_size
        self.global_batch_size, self.image_size = global_batch_size, image_size
        self.steps_per_epoch, self.val_steps, self.seed = steps_per_epoch, val_steps, seed
        self.classes = self.class_names = [str(i) for i in range(num_classes)]

    def _loader(self, steps: int) -> SyntheticLoader:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        shape = (self.batch_size, 3, self.image_size, self.image_size)
        return SyntheticLoader(
            steps=steps, shape=shape, num_classes=self.num_classes, device=device, seed=self.seed
        )

    def describe(self, *, gpu: bool) -> dict[str, Any]:
        """For the run's start line: batches made once on the device, re-used every step."""
        b = self.batch_size
        return {
            "images": {"train": self.steps_per_epoch * b, "val": self.val_steps * b},
            "steps_per_epoch": self.steps_per_epoch,
            "loader": "synthetic (one random batch on the device)",
        }

    def train_dataloader(self) -> SyntheticLoader:
        return self._loader(self.steps_per_epoch)

    def val_dataloader(self) -> SyntheticLoader:
        return self._loader(self.val_steps)
