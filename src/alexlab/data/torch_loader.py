"""The baseline loader: torchvision ``ImageFolder`` + transforms v2 in ``DataLoader`` workers.

The presets are plain callables with keyword-only settings (as torchvision's
``references/classification/presets.py``); the DALI pipelines take the same settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

from alexlab.checks import CorruptImageError

log = logging.getLogger(__name__)

# ImageNet channel statistics in [0, 1] (torchvision's references).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Principal components of ImageNet RGB pixel values in [0, 1] for the PCA colour ("lighting")
# noise of Krizhevsky et al. 2012 §4.1; the decomposition published with fb.resnet.torch.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class Lighting(torch.nn.Module):
    """Add ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~ N(0, std) once per image
    (Krizhevsky et al. 2012 §4.1, std 0.1). Input: float (3, H, W) in [0, 1]."""

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        self.std = std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"Lighting needs a (3, H, W) image. Got shape {tuple(image.shape)}")
        return image + lighting_offsets(1, self.std)[0].view(3, 1, 1)


def lighting_offsets(batch: int, std: float, device: torch.device | None = None) -> torch.Tensor:
    """(B, 3) RGB offsets ``eigvec @ (alpha * eigval)``, alpha ~ N(0, std) per image."""
    eigval = torch.tensor(IMAGENET_EIGVAL, device=device)
    eigvec = torch.tensor(IMAGENET_EIGVEC, device=device)
    alpha = torch.randn(batch, 3, device=device) * std
    return (alpha * eigval) @ eigvec.T


def lighting_on_normalized_batch(
    images: torch.Tensor, std: float, norm_std: Sequence[float], *, channels_last: bool = False
) -> torch.Tensor:
    """PCA lighting for a batch already normalised (the DALI path, on the GPU after transfer):
    an offset of ``o`` in [0, 1] units is ``o / norm_std`` per channel after ``Normalize``."""
    if images.ndim != 4:
        raise ValueError(f"Batch ndim should be 4. Got {images.ndim}")
    offsets = lighting_offsets(images.shape[0], std, images.device)
    offsets = offsets / torch.tensor(norm_std, device=images.device)
    shape = (-1, 1, 1, 3) if channels_last else (-1, 3, 1, 1)
    return images + offsets.view(shape).to(images.dtype)


def train_transform(
    *,
    image_size: int,
    crop: str = "random_resized",
    resize_size: int = 256,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip_prob: float = 0.5,
    lighting_std: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """PIL image -> float (3, S, S), normalised.

    ``crop="random_resized"``: a random area ``scale`` and aspect ``ratio`` resized to S
    (torchvision's reference). ``crop="paper"``: Krizhevsky et al. 2012 §2 and §4.1, shorter side
    to ``resize_size``, central square, then a random S x S crop.
    """
    steps: list = [v2.PILToTensor()]
    if crop == "random_resized":
        steps.append(
            v2.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio), antialias=True)
        )
    elif crop == "paper":
        steps += [
            v2.Resize(resize_size, antialias=True),
            v2.CenterCrop(resize_size),
            v2.RandomCrop(image_size),
        ]
    else:
        raise ValueError(f"data.crop={crop!r} is unknown; valid: random_resized, paper")
    if hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(hflip_prob))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if lighting_std > 0:
        steps.append(Lighting(lighting_std))
    steps.append(v2.Normalize(mean, std))
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


def load_rgb(path: str) -> Image.Image:
    """Decode a whole image file as RGB, or raise CorruptImageError naming it."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()  # decode every byte now: truncation shows here, not in a transform
            return img.convert("RGB")
    except Exception as e:
        raise CorruptImageError(
            f"{path}: cannot decode ({type(e).__name__}: {e}). Remove or replace it (find all "
            f"with `python -m alexlab.data verify ROOT`), or set data.skip_corrupt=true."
        ) from None


class SkippingImageFolder(datasets.ImageFolder):
    """``ImageFolder`` that skips an undecodable file, counts it (per process) and serves the
    next decodable one instead, so batches keep their size and DDP ranks their step count."""

    skipped = 0

    def __getitem__(self, index: int) -> Any:
        for offset in range(len(self)):
            try:
                return super().__getitem__((index + offset) % len(self))
            except CorruptImageError as e:
                type(self).skipped += 1
                log.warning(
                    "skipped corrupt image %d (data.skip_corrupt=true): %s", self.skipped, e
                )
        raise CorruptImageError(f"{self.root}: no decodable image at all")


class TenCropTransform:
    """Krizhevsky et al. 2012 §4.1 test: the four corner and the centre S x S patches of the
    image resized to ``resize_size``, and their mirror images: PIL -> float (10, 3, S, S)."""

    def __init__(
        self,
        *,
        image_size: int,
        resize_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.resize = v2.Compose([v2.PILToTensor(), v2.Resize(resize_size, antialias=True)])
        self.crops = v2.TenCrop(image_size)  # 5 crops, then the same 5 of the flipped image
        self.normalize = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(torch.stack(self.crops(self.resize(image))))


def folder_loader(
    directory: Path,
    transform: v2.Compose,
    *,
    batch_size: int,
    train: bool,
    num_workers: int,
    pin_memory: bool,
    skip_corrupt: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Batches of ``(images float (B, 3, S, S), labels int64 (B,))`` from a class-folder tree.

    Training drops the last partial batch so every rank runs the same number of steps (Lightning
    adds its DistributedSampler). Evaluation under DDP gives each rank a disjoint share with no
    padding, so every sample counts exactly once. An undecodable file stops the run with its
    path, or is skipped with ``skip_corrupt``.
    """
    cls = SkippingImageFolder if skip_corrupt else datasets.ImageFolder
    dataset = cls(str(directory), transform=transform, loader=load_rgb)
    sampler = None
    if not train and world_size > 1:
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=False
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=train,
        drop_last=train,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
