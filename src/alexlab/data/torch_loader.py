"""The baseline loader: a ``DataLoader`` over the scanned file list, torchvision transforms v2
in its workers, uint8 batches out (normalised on the device by ``augment.OnDevice``).

The order is ``order.EpochOrder``'s (as DALI's); each sample's augmentation is seeded by
``(seed, epoch, index)`` alone, so a resumed epoch sees what an uninterrupted one saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from alexlab.config import CorruptImageError
from alexlab.data.order import EpochOrder
from alexlab.data.sources import MAX_IMAGE_PIXELS, decode

log = logging.getLogger(__name__)


class FileDataset(Dataset):
    """``(path, label)`` samples -> ``(transform(image), label)``.

    Keys ``(epoch, index)`` (from ``EpochOrder``) seed the augmentation of that sample from
    ``(seed, epoch, index)`` in a forked RNG. ``skip_corrupt``: an unusable file is skipped,
    counted (per process) and replaced by the next usable one, so batches keep their size.
    """

    skipped = 0

    def __init__(self, samples: list[tuple[str, int]], transform: Callable, *, seed: int = 0,
                 skip_corrupt: bool = False, max_pixels: int = MAX_IMAGE_PIXELS) -> None:  # fmt: skip
        self.samples, self.transform, self.seed = samples, transform, seed
        self.skip_corrupt, self.max_pixels = skip_corrupt, max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self._get(index)

    def _load(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        return self.transform(decode(path, self.max_pixels)), label

    def _get(self, index: int) -> tuple[Any, int]:
        if not self.skip_corrupt:
            return self._load(index)
        for offset in range(len(self)):
            try:
                return self._load((index + offset) % len(self))
            except CorruptImageError as e:
                type(self).skipped += 1
                log.warning("skipped image %d (data.skip_corrupt=true): %s", self.skipped, e)
        raise CorruptImageError("no usable image at all in the split")


class TorchLoader:
    """``(images uint8 (B, 3, S, S), labels int64 (B,))`` over ``order``'s slice; ``sampler``
    (Lightning calls its ``set_epoch``) and the state Lightning saves are the order's."""

    batch_sampler = None  # (Lightning looks for it next to `sampler`)

    def __init__(self, dataset: Dataset, order: EpochOrder, *, num_workers: int,
                 pin_memory: bool) -> None:  # fmt: skip
        self.sampler = order
        self.loader = DataLoader(
            dataset, batch_size=order.batch_size, sampler=order, num_workers=num_workers,
            pin_memory=pin_memory, persistent_workers=num_workers > 0,
            # its own generator: starting an epoch never draws from the global RNG (dropout's)
            generator=torch.Generator().manual_seed(order.seed),
        )  # fmt: skip

    def __len__(self) -> int:
        return self.sampler.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler
        for images, labels in self.loader:
            order.consumed += order.train  # evaluation always reads its whole slice
            yield images, labels

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
