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
from torch.utils.data import DataLoader, Sampler
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


class ImageFolderDataset(datasets.ImageFolder):
    """``ImageFolder`` with two additions.

    - Keys ``(epoch, index)`` (from ``ResumableSampler``) seed the augmentation of that sample
      from ``(seed, epoch, index)`` alone, in a forked RNG: the same image gets the same crop
      whatever ran before, so a resumed run sees exactly what an uninterrupted one saw.
    - ``skip_corrupt``: an undecodable file is skipped, counted (per process) and replaced by
      the next decodable one, so batches keep their size and DDP ranks their step count.
    """

    skipped = 0

    def __init__(
        self, root: str, *, seed: int = 0, skip_corrupt: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        self.seed = seed
        self.skip_corrupt = skip_corrupt

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            epoch, index = key
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
                return self._get(index)
        return self._get(key)

    def _get(self, index: int) -> Any:
        if not self.skip_corrupt:
            return super().__getitem__(index)
        for offset in range(len(self)):
            try:
                return super().__getitem__((index + offset) % len(self))
            except CorruptImageError as e:
                type(self).skipped += 1
                log.warning(
                    "skipped corrupt image %d (data.skip_corrupt=true): %s", self.skipped, e
                )
        raise CorruptImageError(f"{self.root}: no decodable image at all")


class ResumableSampler(Sampler):
    """Shuffles with a permutation fixed by ``(seed, epoch)`` and yields ``(epoch, index)``
    keys. ``batches_done()`` tells how many batches of the current epoch were already trained
    (non-zero only when resuming from a mid-epoch checkpoint); those are skipped without
    loading them, so the epoch continues exactly where the checkpoint left it."""

    def __init__(self, size: int, *, seed: int, batch_size: int, batches_done=lambda: 0) -> None:
        self.size, self.seed, self.batch_size = size, seed, batch_size
        self.batches_done = batches_done
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before every epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        for index in order[self.batches_done() * self.batch_size :]:
            yield (self.epoch, index)


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
    seed: int = 0,
    batches_done=lambda: 0,
) -> DataLoader:
    """Batches of ``(images float (B, 3, S, S), labels int64 (B,))`` from a class-folder tree.

    Training shuffles with ``ResumableSampler`` and drops the last partial batch so every rank
    runs the same number of steps (under DDP Lightning adds its DistributedSampler). Evaluation under DDP gives each rank a disjoint share with no
    padding, so every sample counts exactly once. An undecodable file stops the run with its
    path, or is skipped with ``skip_corrupt``.
    """
    dataset = ImageFolderDataset(
        str(directory), seed=seed, skip_corrupt=skip_corrupt, transform=transform, loader=load_rgb
    )
    if train:  # under DDP, Lightning swaps in its DistributedSampler (seeded per epoch too)
        sampler = ResumableSampler(
            len(dataset), seed=seed, batch_size=batch_size, batches_done=batches_done
        )
    elif world_size > 1:
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=False
        )
    else:
        sampler = None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        # its own generator: creating an iterator never draws from the global RNG (dropout's)
        generator=torch.Generator().manual_seed(seed),
        drop_last=train,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
