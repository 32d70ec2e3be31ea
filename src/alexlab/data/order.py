"""The epoch order: alexlab's, not the reader's. Both loaders take their slice from here.

Training: epoch ``e`` reads a permutation fixed by ``(seed, e)``; its ``k``-th ``W x B`` samples
are global batch ``k``, rank ``r`` of ``W`` taking the ``r``-th ``B`` (what one process with
``W x B`` would read). New order and rank subsets every epoch; no sample read twice. Each rank
gets whole optimizer steps; the rest (under one global step) is left out, counted in ``dropped``.
Evaluation: in order, rank ``r`` takes ``[N r / W, N (r + 1) / W)``: every sample exactly once.
A resumed epoch continues at the next unseen batch of its slice (``state_dict()``: epoch,
batches consumed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


def mix_seed(seed: int, *parts: int) -> int:
    """One seed from the base seed and integers (epoch, rank, sample index ...), the only
    formula in alexlab: ``s = s * 1_000_003 + part`` for each part (a prime: distinct
    ``(seed, part)`` pairs give distinct seeds while parts stay under it), kept below 2**63."""
    for part in parts:
        seed = seed * 1_000_003 + part
    return seed % 2**63


class EpochOrder(Sampler):
    """This rank's sample indices per epoch (of ``size`` samples); iterating yields ``(epoch,
    index)`` keys from the first unconsumed batch on (the torch loader's sampler; DALI reads
    ``indices()``). ``train=False``: every sample once, in order."""

    def __init__(
        self,
        size: int,
        *,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        accumulation: int = 1,
        train: bool = True,
    ) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.train = rank, world_size, train
        if train:
            step = world_size * batch_size * accumulation  # images per optimizer step, all ranks
            self.steps = size // step * accumulation  # batches per rank per epoch
            self.dropped = size - self.steps * batch_size * world_size
        else:
            self.start, self.stop = size * rank // world_size, size * (rank + 1) // world_size
            self.steps = -(-(self.stop - self.start) // batch_size)
            self.dropped = 0
        self.epoch, self.consumed = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every train epoch (through the loader's ``sampler``)."""
        if epoch != self.epoch:
            self.epoch, self.consumed = epoch, 0

    def indices(self) -> list[int]:
        """This rank's samples for the current epoch, in reading order."""
        if not self.train:
            return list(range(self.start, self.stop))
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        batches = (self.steps, self.world_size, self.batch_size)  # global batch k, rank r
        perm = torch.randperm(self.size, generator=g)[: math.prod(batches)]
        return perm.view(batches)[:, self.rank].flatten().tolist()

    def remaining(self) -> list[int]:
        """``indices()`` from the first batch not yet consumed in this epoch."""
        return self.indices()[self.consumed * self.batch_size :]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.remaining():
            yield (self.epoch, index)

    def __len__(self) -> int:
        return len(self.remaining())

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
