"""The baseline loader: a ``DataLoader`` over the scanned file list, torchvision transforms v2
in its workers, uint8 batches out (normalised on the device by ``augment.OnDevice``).

The order is ``order.EpochOrder``'s (as DALI's); each sample's augmentation is seeded by
``(seed, epoch, index)`` alone, so a resumed epoch sees what an uninterrupted one saw.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from alexlab.config import CorruptImageError
from alexlab.data import images
from alexlab.data.order import EpochOrder, mix_seed
from alexlab.data.sources import bad_files_error

log = logging.getLogger(__name__)


class FileDataset(Dataset):
    """``(path, label)`` samples -> ``(transform(opened image), label)``: ``transform`` gets the
    image with only its header read (see ``crops``).

    Keys ``(epoch, index)`` (from ``EpochOrder``) seed the augmentation of that sample from
    ``(seed, epoch, index)`` in a forked RNG. ``skip_corrupt``: an unusable file is skipped,
    counted (per process) and replaced by the next usable one, so batches keep their size.
    """

    skipped = 0

    def __init__(
        self,
        samples: list[tuple[str, int]],
        transform: Callable,
        *,
        seed: int = 0,
        skip_corrupt: bool = False,
        max_pixels: int = images.MAX_IMAGE_PIXELS,
    ) -> None:
        self.samples, self.transform, self.seed = samples, transform, seed
        self.skip_corrupt, self.max_pixels = skip_corrupt, max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed also queues a seed per accelerator
            # type, formatting a stack trace each time (2-4 ms a sample on a CPU)
            torch.default_generator.manual_seed(mix_seed(self.seed, epoch, index))
            if not self.skip_corrupt:
                return self._load(index)
            for offset in range(len(self)):
                try:
                    return self._load((index + offset) % len(self))
                except CorruptImageError as e:
                    type(self).skipped += 1
                    log.warning("skipped image %d (data.skip_corrupt=true): %s", self.skipped, e)
            raise CorruptImageError("no usable image at all in the split")

    def _load(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        try:
            with images.open_image(path, self.max_pixels) as img:  # the header only, checked
                return self.transform(img), label  # decodes what it needs
        except images.ImageError as e:
            raise bad_files_error([(path, str(e))]) from None


class TorchLoader:
    """``(images uint8 (B, 3, S, S), labels int64 (B,))`` over ``order``'s slice; ``sampler``
    (Lightning calls its ``set_epoch``) and the state Lightning saves are the order's.

    The worker processes persist across epochs and stop at ``close()`` (the datamodule's
    ``teardown``): Lightning stops only the workers of the ``DataLoader``s it is handed, and at
    exit (DALI's ``atexit`` GC) the queues would be finalised before the iterator, each worker
    waiting out a 5 s time-out (docs/data.md, "Worker processes stop with their stage").
    """

    batch_sampler = None  # (Lightning looks for it next to `sampler`)

    def __init__(
        self, dataset: Dataset, order: EpochOrder, *, num_workers: int, pin_memory: bool
    ) -> None:
        self.sampler, self.dataset = order, dataset
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self._loader: DataLoader | None = None
        self._batches: Iterator | None = None  # the epoch's iterator; held here only (`close`)
        self._at_exit: Callable[[], None] | None = None

    def __len__(self) -> int:
        return self.sampler.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler
        if self._loader is None:
            self._loader = DataLoader(
                self.dataset,
                batch_size=order.batch_size,
                sampler=order,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
                # its own generator: starting an epoch never draws from the global RNG (dropout's)
                generator=torch.Generator().manual_seed(order.seed),
            )
            if self.num_workers:  # an error skips teardown: stop them before the exit-time GC
                ref = weakref.ref(self)
                self._at_exit = lambda: (me := ref()) is not None and me.close()
                atexit.register(self._at_exit)
        self._batches = iter(self._loader)
        while self._batches is not None:  # (not `for`: its frame would hold the iterator too)
            try:
                images, labels = next(self._batches)
            except StopIteration:
                return
            order.consumed += order.train  # evaluation always reads its whole slice
            yield images, labels

    def close(self) -> None:
        """Stop the worker processes now; the next ``iter()`` starts new ones."""
        self._batches = self._loader = None  # the last references: the workers are joined here
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
