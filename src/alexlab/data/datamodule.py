"""``ImageDataModule``: one interface over every source and loader.

Every loader yields ``(images float NCHW normalised, labels int64)``. ``batch_size`` is what one
device holds; ``global_batch_size`` (optional, the paper's batch) is read by ``alexlab.train``
to derive gradient accumulation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from alexlab.checks import ConfigError
from alexlab.data import torch_loader
from alexlab.data.sources import FolderSource

LOADERS = ("torch",)


class ImageDataModule(L.LightningDataModule):
    """Class-folder data through the torch loader.

    Args:
        root: dataset root (``data.root``); for ``digits``, the cache it is written into.
        source: builds the source from ``root`` (a ``_partial_`` of a class in ``sources``).
        num_classes: expected number of classes, checked against the class folders; None
            takes the number of class folders.
        loader: ``"torch"``.
        batch_size: images per device per step.
        global_batch_size: images per optimizer step over all devices, or None (no accumulation).
        num_workers: loader worker processes per device.
        image_size: crop side fed to the network (224 or 227 for ImageNet).
        resize_size: shorter side before the eval centre crop (256 for ImageNet).
        crop: train crop, ``"random_resized"`` (torchvision's) or ``"paper"`` (256, random S).
        scale, ratio: random-resized-crop area and aspect ranges (train).
        hflip_prob: horizontal flip probability (train).
        lighting_std: PCA colour noise std (Krizhevsky et al. 2012 §4.1: 0.1); 0 is off.
        mean, std: per-channel normalisation in [0, 1] units.
        pin_memory: page-locked host batches for faster copies to a GPU.
    """

    def __init__(
        self,
        *,
        root: str | Path | None,
        source: Callable[[str | Path | None], FolderSource] = FolderSource,
        num_classes: int | None = None,
        loader: str = "torch",
        batch_size: int = 256,
        global_batch_size: int | None = None,
        num_workers: int = 4,
        image_size: int = 224,
        resize_size: int = 256,
        crop: str = "random_resized",
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip_prob: float = 0.5,
        lighting_std: float = 0.0,
        mean: Sequence[float] = torch_loader.IMAGENET_MEAN,
        std: Sequence[float] = torch_loader.IMAGENET_STD,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        if loader not in LOADERS:
            raise ConfigError(f"data.loader={loader} is unknown; valid: {', '.join(LOADERS)}.")
        self.source = source(root)  # checks the paths now, before any training starts
        if num_classes is None:
            num_classes = len(self.source.classes)
        if len(self.source.classes) != num_classes:
            raise ConfigError(
                f"data.num_classes={num_classes} but {self.source.split_dir('train')} has "
                f"{len(self.source.classes)} class folders. Set data.num_classes="
                f"{len(self.source.classes)} or fix the folder tree."
            )
        self.classes = self.source.classes
        self.num_classes = num_classes
        self.loader = loader
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.resize_size = resize_size
        self.pin_memory = pin_memory
        self._train_tf = torch_loader.train_transform(
            image_size=image_size,
            scale=scale,
            ratio=ratio,
            hflip_prob=hflip_prob,
            mean=mean,
            std=std,
        )
        self._eval_tf = torch_loader.eval_transform(
            image_size=image_size, resize_size=resize_size, mean=mean, std=std
        )

    def _loader(self, split: str, *, train: bool) -> DataLoader:
        return torch_loader.folder_loader(
            self.source.split_dir(split),
            self._train_tf if train else self._eval_tf,
            batch_size=self.batch_size,
            train=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),  # no-op on CPU-only hosts
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test" if self.has_test else "val", train=False)

    @property
    def has_test(self) -> bool:
        return "test" in self.source.splits


def batch_size(batch: tuple) -> int:
    """Images in one ``(images, labels)`` batch (for Lightning's ``ThroughputMonitor``)."""
    return int(batch[0].shape[0])
