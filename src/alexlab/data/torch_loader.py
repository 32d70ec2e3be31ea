"""The baseline loader: torchvision ``ImageFolder`` + transforms v2 in ``DataLoader`` workers.

The presets are plain callables with keyword-only settings (as torchvision's
``references/classification/presets.py``); the DALI pipelines take the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

# ImageNet channel statistics in [0, 1] (torchvision's references).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(
    *,
    image_size: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip_prob: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Random-resized crop, optional flip, normalise: PIL image -> float (3, S, S)."""
    steps: list = [
        v2.PILToTensor(),
        v2.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio), antialias=True),
    ]
    if hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(hflip_prob))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def eval_transform(
    *,
    image_size: int,
    resize_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Resize the shorter side to ``resize_size``, centre-crop ``image_size``, normalise."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(resize_size, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )


def folder_loader(
    directory: Path,
    transform: v2.Compose,
    *,
    batch_size: int,
    train: bool,
    num_workers: int,
    pin_memory: bool,
) -> DataLoader:
    """Batches of ``(images float (B, 3, S, S), labels int64 (B,))`` from a class-folder tree.

    Training drops the last partial batch so every rank runs the same number of steps.
    """
    dataset = datasets.ImageFolder(str(directory), transform=transform)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
