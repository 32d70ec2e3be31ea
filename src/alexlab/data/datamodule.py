"""``ImageDataModule``: one interface over every source and loader.

Every loader yields ``(images float NCHW normalised, labels int64)``. ``batch_size`` is what one
device holds; ``global_batch_size`` (optional, the paper's batch) is read by ``alexlab.train``
to derive gradient accumulation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from alexlab.checks import ConfigError
from alexlab.data import dali, torch_loader
from alexlab.data.sources import IMAGE_EXTENSIONS, FolderSource

LOADERS = ("auto", "dali", "torch")


def resolve_loader(loader: str, *, skip_corrupt: bool = False) -> str:
    """``auto`` -> ``dali`` where DALI imports, else ``torch``; ``dali`` without DALI warns once.
    ``skip_corrupt`` needs per-image error handling: the torch loader."""
    if loader not in LOADERS:
        raise ConfigError(f"data.loader={loader} is unknown; valid: {', '.join(LOADERS)}.")
    if loader == "torch":
        return "torch"
    if skip_corrupt:
        if loader == "dali":
            rank_zero_warn("data.skip_corrupt=true skips per image: using the torch loader.")
        return "torch"
    if dali.DALI_AVAILABLE:
        return "dali"
    if loader == "dali":
        rank_zero_warn(
            "data.loader=dali: NVIDIA DALI is not installed here; using the torch loader."
        )
    return "torch"


class ImageDataModule(L.LightningDataModule):
    """Class-folder data through DALI (GPU or CPU backend) or the torch loader.

    Args:
        root: dataset root (``data.root``); for ``digits``, the cache it is written into.
        source: builds the source from ``root`` (a ``_partial_`` of a class in ``sources``).
        num_classes: expected number of classes, checked against the class folders; None
            takes the number of class folders.
        loader: ``"auto"`` (DALI where it imports), ``"dali"`` or ``"torch"``.
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
        pin_memory: page-locked host batches for faster copies to a GPU (torch loader).
        dali_threads: DALI CPU worker threads per device.
        dali_prefetch: batches DALI prepares ahead.
        dali_fast_idct: train-time CPU JPEG decoding with libjpeg-turbo's fast integer IDCT
            (about 1 level of 255 off the exact decode on average, 99% within 3; eval decoding
            stays exact).
        seed: base seed of the DALI pipelines (each rank adds its rank).
        skip_corrupt: skip (and count) undecodable images instead of stopping with their path.
        channels_last: batches in channels-last memory (NHWC), what convolutions prefer on
            tensor cores; DALI writes them that way directly.
        fp16: DALI emits float16 images (half the transfer); for ``precision=16-mixed``.
        ten_crop: test batches hold the paper's 10 views per image, (B, 10, 3, S, S)
            (Krizhevsky et al. 2012 §4.1); read with the torch loader.
    """

    def __init__(
        self,
        *,
        root: str | Path | None,
        source: Callable[[str | Path | None], FolderSource] = FolderSource,
        num_classes: int | None = None,
        loader: str = "auto",
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
        dali_threads: int = 4,
        dali_prefetch: int = 2,
        dali_fast_idct: bool = True,
        seed: int = 0,
        skip_corrupt: bool = False,
        channels_last: bool = False,
        fp16: bool = False,
        ten_crop: bool = False,
    ) -> None:
        super().__init__()
        self.skip_corrupt = skip_corrupt
        self.loader = resolve_loader(loader, skip_corrupt=skip_corrupt)
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
        self.class_names = self.source.class_names  # human names (ImageNet: torchvision's)
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.resize_size = resize_size
        self.pin_memory = pin_memory
        self.dali_threads = dali_threads
        self.dali_prefetch = dali_prefetch
        self.seed = seed
        self.channels_last = channels_last
        self.fp16 = fp16
        self.ten_crop = ten_crop
        self.lighting_std = lighting_std
        self.mean, self.std = tuple(mean), tuple(std)
        self._augment = dict(
            crop=crop,
            scale=tuple(scale),
            ratio=tuple(ratio),
            hflip_prob=hflip_prob,
            fast_idct=dali_fast_idct,
        )
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

    def _placement(self) -> dict[str, Any]:
        """Rank, world size and device of the trainer this module serves (rank 0 of 1 on the
        CPU when used on its own)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return dict(shard_id=0, num_shards=1, gpu=False, device_id=None)
        device = trainer.strategy.root_device
        gpu = device.type == "cuda"
        return dict(shard_id=trainer.global_rank, num_shards=trainer.world_size, gpu=gpu,
                    device_id=device.index if gpu else None)  # fmt: skip

    def _dali_loader(self, split: str, *, train: bool) -> dali.DaliLoader:
        place = self._placement()
        common = dict(
            file_root=self.source.split_dir(split), shard_id=place["shard_id"],
            num_shards=place["num_shards"], gpu=place["gpu"], image_size=self.image_size,
            resize_size=self.resize_size, mean=self.mean, std=self.std,
            batch_size=self.batch_size, num_threads=self.dali_threads,
            device_id=place["device_id"], prefetch_queue_depth=self.dali_prefetch,
            fp16=self.fp16, channels_last=self.channels_last,
        )  # fmt: skip
        factory = dali.train_pipeline if train else dali.eval_pipeline
        extra = self._augment if train else {}

        def build(epoch: int):
            seed = self.seed + place["shard_id"] + 7919 * epoch  # per rank, per rebuild
            return factory(seed=seed, **common, **extra)

        return dali.DaliLoader(build, batch_size=self.batch_size, shard_id=place["shard_id"],
                               num_shards=place["num_shards"], train=train,
                               file_root=self.source.split_dir(split),
                               channels_last=self.channels_last, epoch=self._current_epoch,
                               batches_done=self._batches_done)  # fmt: skip

    def _loader(self, split: str, *, train: bool) -> Iterable:
        if self.loader == "dali":
            return self._dali_loader(split, train=train)
        place = self._placement()
        return torch_loader.folder_loader(
            self.source.split_dir(split),
            self._train_tf if train else self._eval_tf,
            batch_size=self.batch_size,
            train=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),  # no-op on CPU-only hosts
            skip_corrupt=self.skip_corrupt,
            rank=place["shard_id"],
            world_size=place["num_shards"],
            seed=self.seed,
            batches_done=self._batches_done,
        )

    def _current_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.current_epoch if trainer is not None else 0

    def _batches_done(self) -> int:
        """Batches of the current epoch already trained: non-zero only right after resuming
        from a mid-epoch checkpoint (Lightning restores its loop progress first). Under DDP
        with the torch loader, Lightning wraps the sampler and sizes the wrapper by its length,
        so the sampler cannot skip: that epoch's order restarts (documented)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        if self.loader == "torch" and trainer.world_size > 1:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # DALI path: the paper's PCA lighting noise runs here, on the device, after transfer
        # (the torch loader applies it per image in its workers)
        trainer = getattr(self, "trainer", None)
        if (
            self.loader == "dali"
            and self.lighting_std > 0
            and trainer is not None
            and trainer.training
        ):
            images, labels = batch
            batch = (
                torch_loader.lighting_on_normalized_batch(images, self.lighting_std, self.std),
                labels,
            )
        return batch

    def train_dataloader(self) -> Iterable:
        return self._loader("train", train=True)

    def val_dataloader(self) -> Iterable:
        return self._loader("val", train=False)

    def test_dataloader(self) -> Iterable:
        split = "test" if self.has_test else "val"
        if self.ten_crop:  # the 10 views per image come from the torch transform
            tf = torch_loader.TenCropTransform(image_size=self.image_size, resize_size=self.resize_size,
                                                 mean=self.mean, std=self.std)  # fmt: skip
            place = self._placement()
            return torch_loader.folder_loader(
                self.source.split_dir(split), tf, batch_size=self.batch_size, train=False,
                num_workers=self.num_workers, pin_memory=False,
                rank=place["shard_id"], world_size=place["num_shards"],
            )  # fmt: skip
        return self._loader(split, train=False)

    @property
    def has_test(self) -> bool:
        return "test" in self.source.splits

    def describe(self, *, gpu: bool) -> dict[str, Any]:
        """For the run's start line: images per split and the loader (``gpu``: the run's
        devices are GPUs, where DALI decodes on the device)."""
        if self.loader == "dali":
            loader = f"DALI, {'GPU' if gpu else 'CPU'} backend, {self.dali_threads} threads"
        else:
            loader = f"torch DataLoader, {self.num_workers} workers"
        images = {split: count_images(path) for split, path in self.source.splits.items()}
        return {"images": images, "loader": loader}


def count_images(split_dir: Path) -> int:
    """Image files in a class-folder split (the extensions both loaders read)."""
    return sum(
        1
        for folder in os.scandir(split_dir)
        if folder.is_dir()
        for entry in os.scandir(folder.path)
        if entry.name.lower().endswith(IMAGE_EXTENSIONS)
    )


def batch_size(batch: tuple) -> int:
    """Images in one ``(images, labels)`` batch (for ``TrainThroughput``)."""
    return int(batch[0].shape[0])
