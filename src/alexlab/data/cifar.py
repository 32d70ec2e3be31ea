"""CIFAR-10 from the standard ``cifar-10-batches-py`` files, augmented on the device.

Nothing to decode, so DALI has nothing to add: uint8 (B, 3, 32, 32) batches leave the loader
and seed 003's augmentation runs on the device (upsample to 227, flip, normalise)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from alexlab.config import ConfigError, require_dir
from alexlab.data.augment import Augment, OnDevice, input_dtype

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of the CIFAR-10 training set, in [0, 1].
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
Split = tuple[torch.Tensor, torch.Tensor]  # (images, labels)


class _ArrayUnpickler(pickle.Unpickler):
    """The CIFAR files are pickles: allow only what they hold (numpy arrays, lists, bytes),
    so a tampered file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("_codecs", "encode"),  # how protocol-2 pickles spell bytes (torch allows it too)
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden object {module}.{name} in a CIFAR file")
        return super().find_class(module, name)


def read_batch(path: Path) -> Split:
    """One CIFAR batch file -> (uint8 (N, 3, 32, 32), int64 (N,))."""
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get(b"labels", entry.get(b"fine_labels")), dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
        raise ConfigError(
            f"{path} is not a CIFAR-10 batch file ({type(e).__name__}: {e})."
        ) from None
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


def load_cifar10(root: Path, *, download: bool = False) -> dict[str, Split]:
    folder = Path(root) / FOLDER
    if download and not folder.is_dir():
        from torchvision.datasets import CIFAR10  # needs network

        CIFAR10(str(root), download=True)
    require_dir(
        folder,
        "data.root",
        f"It must hold {FOLDER}/ (data_batch_1..5, test_batch); "
        f"set data.download=true to fetch it where there is network.",
    )
    if missing := [n for n in (*TRAIN_FILES, TEST_FILE) if not (folder / n).is_file()]:
        raise ConfigError(f"data.root={root}: {FOLDER}/ lacks {', '.join(missing)}.")
    images, labels = zip(*(read_batch(folder / n) for n in TRAIN_FILES), strict=True)
    return {"train": (torch.cat(images), torch.cat(labels)), "val": read_batch(folder / TEST_FILE)}


def augment_on_device(
    images: torch.Tensor,
    *,
    image_size: int,
    train: bool,
    hflip_prob: float,
    normalize: OnDevice,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) -> float (B, 3, S, S): upsample, flip (train), normalise (with
    ``normalize``'s constants, copied to the device once), in ``dtype`` (None: float32).
    ``F.interpolate`` refuses a batch that is not 4-D."""
    x = F.interpolate(
        images.float(), size=(image_size, image_size), mode="bilinear", align_corners=False
    ).clamp_(0, 255)
    if train and hflip_prob > 0:
        flip = torch.rand(x.shape[0], device=x.device) < hflip_prob
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    return normalize(x, train=False, dtype=dtype)


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10: 50,000 train / 10,000 test images (the test batch is the validation split).
    The arguments are the ``data.*`` settings of ``alexlab.config.schema.CifarData``."""

    has_test = False
    classes, class_names = list(CLASSES), list(CLASSES)

    def __init__(
        self,
        *,
        root: str | Path | None,
        download: bool = False,
        num_classes: int | None = 10,
        batch_size: int = 128,
        global_batch_size: int | None = None,
        image_size: int = 227,
        hflip_prob: float = 0.5,
        mean: tuple[float, ...] = CIFAR_MEAN,
        std: tuple[float, ...] = CIFAR_STD,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if root is None:
            raise ConfigError(
                "data.root is not set: pass data.root=/path holding cifar-10-batches-py/."
            )
        self.splits = load_cifar10(Path(root), download=download)  # checked now, before training
        self.num_classes, self.batch_size, self.image_size = 10, batch_size, image_size
        self.global_batch_size, self.hflip_prob = global_batch_size, hflip_prob
        self.num_workers = num_workers
        self.normalize = OnDevice(Augment(mean=mean, std=std))  # constants to the device once

    def _loader(self, split: str, *, train: bool) -> DataLoader:
        return DataLoader(
            TensorDataset(*self.splits[split]),
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    test_dataloader = val_dataloader  # CIFAR-10's test batch is the validation split

    def describe(self, *, gpu: bool) -> dict[str, Any]:
        """For the run's start line: images per split and the loader."""
        return {
            "images": {split: len(labels) for split, (_, labels) in self.splits.items()},
            "loader": f"torch DataLoader (in memory), {self.num_workers} "
            "workers; flip and resize on the device",
        }

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        images = augment_on_device(
            images,
            image_size=self.image_size,
            train=self.trainer is not None and self.trainer.training,
            hflip_prob=self.hflip_prob,
            normalize=self.normalize,
            dtype=input_dtype(self.trainer, torch.float32),
        )
        return images, labels
