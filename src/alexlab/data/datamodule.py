"""``ImageDataModule``: one interface over every folder source and both loaders.

One scan, one ``order.EpochOrder`` and one ``augment.Augment`` feed DALI and the torch loader
alike; a module sees float NCHW images and int64 labels either way (docs/data.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchvision.transforms import v2

from alexlab.config import ConfigError
from alexlab.data import dali, images, sources
from alexlab.data.augment import Augment, OnDevice, input_dtype
from alexlab.data.crops import TrainCrop
from alexlab.data.order import EpochOrder
from alexlab.data.sources import FolderSource, bad_files_error
from alexlab.data.torch_loader import FileDataset, TorchLoader

_AUGMENT = Augment()  # the augmentation defaults, declared once (in ``Augment``)


def default_dali_threads(local_processes: int = 1) -> int:
    """The CPU cores this process may use, shared among the run's processes on this machine
    (``Trainer.num_devices``: the GPUs the run uses, not every visible one; at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, local_processes))


class ImageDataModule(L.LightningDataModule):
    """Class-folder data through DALI (GPU or CPU backend) or the torch loader.

    The arguments are the ``data.*`` settings, each documented (type, range, default) once in
    ``alexlab.config.schema.ImageData``; the augmentation ones go to ``augment.Augment``. Two
    are not settings: ``source`` builds the source from ``root`` (a ``_partial_`` of a class in
    ``sources``), and ``normalise_on_device`` (None: on a GPU, 4x less to copy; not on a CPU,
    where the loader's threads or workers normalise in parallel with the step).
    """

    def __init__(
        self,
        *,
        root: str | Path | None,
        source: Callable[[str | Path | None], FolderSource] = FolderSource,
        num_classes: int | None = None,
        loader: str = "auto",
        batch_size: int = 128,
        global_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        dali_threads: int | None = None,
        dali_prefetch: int = 2,
        dali_fast_idct: bool = True,
        dali_hw_decoder_load: float = 0.65,
        seed: int = 0,
        skip_corrupt: bool = False,
        max_image_pixels: int = sources.MAX_IMAGE_PIXELS,
        channels_last: bool = False,
        fp16: bool = False,
        ten_crop: bool = False,
        normalise_on_device: bool | None = None,
        image_size: int = _AUGMENT.image_size,
        resize_size: int = _AUGMENT.resize_size,
        crop: str = _AUGMENT.crop,
        scale: Sequence[float] = _AUGMENT.scale,
        ratio: Sequence[float] = _AUGMENT.ratio,
        hflip_prob: float = _AUGMENT.hflip_prob,
        lighting_std: float = _AUGMENT.lighting_std,
        mean: Sequence[float] = _AUGMENT.mean,
        std: Sequence[float] = _AUGMENT.std,
    ) -> None:
        super().__init__()
        self.augment = Augment(
            image_size=image_size,
            resize_size=resize_size,
            crop=crop,
            scale=scale,
            ratio=ratio,
            hflip_prob=hflip_prob,
            lighting_std=lighting_std,
            mean=mean,
            std=std,
        )
        self.skip_corrupt = skip_corrupt
        # auto: DALI where it imports, else torch; skip_corrupt (per image) needs torch
        if loader == "dali" and skip_corrupt:
            rank_zero_warn("data.skip_corrupt=true skips per image: using the torch loader.")
        elif loader == "dali" and not dali.DALI_AVAILABLE:
            rank_zero_warn("data.loader=dali: NVIDIA DALI is not installed here; using torch.")
        usable = loader != "torch" and not skip_corrupt and dali.DALI_AVAILABLE
        self.loader = "dali" if usable else "torch"
        self.source = source(root)  # checks the paths now, before any training starts
        found = len(self.source.classes)
        if num_classes is not None and found != num_classes:
            raise ConfigError(
                f"data.num_classes={num_classes} but {self.source.split_dir('train')} has {found} "
                f"class folders. Set data.num_classes={found} or fix the folder tree."
            )
        self.classes, self.num_classes = self.source.classes, found
        self.class_names = self.source.class_names  # human names (ImageNet: torchvision's)
        self.batch_size, self.global_batch_size = batch_size, global_batch_size
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed
        self._dali_threads = dali_threads
        self.dali_prefetch, self.dali_fast_idct = dali_prefetch, dali_fast_idct
        self.dali_hw_decoder_load = dali_hw_decoder_load
        self.max_image_pixels, self.channels_last = max_image_pixels, channels_last
        self.ten_crop, self.normalise_on_device = ten_crop, normalise_on_device
        # (images uint8 or normalised on the device, train=) -> float normalised, lit (train)
        self.on_device = OnDevice(self.augment, dtype=torch.float16 if fp16 else torch.float32)
        self._listings: dict[str, list[tuple[str, int]]] = {}
        self._train_loader: Any = None
        self._train_state: dict[str, Any] | None = None  # from a checkpoint, for the next loader
        self._torch_loaders: list[TorchLoader] = []  # their workers stop in `teardown`

    @property
    def dali_threads(self) -> int:
        """``data.dali_threads``, or the cores shared among the trainer's local devices."""
        trainer = getattr(self, "trainer", None)
        return self._dali_threads or default_dali_threads(trainer.num_devices if trainer else 1)

    def samples(self, split: str) -> list[tuple[str, int]]:
        """The split's ``(file, label)`` list, scanned once per datamodule (so once per fit)."""
        if split not in self._listings:
            split_dir = self.source.split_dir(split)
            listing = sources.scan_split(split_dir, self.classes)
            if listing.empty_classes:
                raise ConfigError(
                    f"{len(listing.empty_classes)} class folder(s) hold no image: "
                    f"{', '.join(listing.empty_classes[:5])}. Every class needs at least one "
                    f"image: add images or remove the folder(s) from every split."
                )
            if listing.empty_files and not self.skip_corrupt:
                raise bad_files_error([(f, "empty file") for f in listing.empty_files])
            if listing.empty_files:
                rank_zero_warn(
                    f"data.skip_corrupt=true: {len(listing.empty_files)} empty file(s) "
                    f"left out of {split_dir}"
                )
            self._listings[split] = listing.samples
        return self._listings[split]

    def _loader(self, split: str, *, train: bool, views: bool = False) -> Iterable:
        """``views``: the 2012 paper's 10 test views per image (torch transforms, normalised)."""
        samples, trainer = self.samples(split), getattr(self, "trainer", None)  # None: 0 of 1, CPU
        device = trainer.strategy.root_device if trainer else torch.device("cpu")
        gpu = device.type == "cuda"
        uint8 = gpu if self.normalise_on_device is None else self.normalise_on_device
        order = EpochOrder(
            len(samples),
            batch_size=self.batch_size,
            seed=self.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            accumulation=trainer.accumulate_grad_batches if trainer and train else 1,
            train=train,
        )
        if train:
            rank_zero_info(
                f"[alexlab] {split}: {len(samples)} images, {order.steps} batches per "
                f"rank per epoch; {order.dropped} left out (under one optimizer step, "
                f"a different remainder every epoch)"
            )
        if views:
            tf = v2.Compose([images.load_rgb, self.augment.ten_crop_transform()])
            return self._torch_loader(samples, tf, order, pin=False)
        if self.loader == "torch":
            if train:
                tf = TrainCrop(self.augment)  # the lighting runs on the device
            else:  # the whole upright picture (exact, as DALI's eval pipeline)
                tf = v2.Compose([images.load_rgb, self.augment.eval_transform()])
            tf = tf if uint8 else v2.Compose([tf, self.augment.normalise()])
            return self._torch_loader(samples, tf, order, pin=gpu)
        extra = dict(fast_idct=self.dali_fast_idct) if train else {}
        build = functools.partial(
            dali.train_pipeline if train else dali.eval_pipeline,
            batch_size=self.batch_size,
            num_threads=self.dali_threads,
            device_id=device.index if gpu else None,
            prefetch_queue_depth=self.dali_prefetch,
            gpu=gpu,
            uint8=uint8,
            augment=self.augment,
            hw_decoder_load=self.dali_hw_decoder_load,
            channels_last=self.channels_last,
            **extra,
        )
        return dali.DaliLoader(
            build,
            order,
            samples,
            channels_last=self.channels_last,
            max_pixels=self.max_image_pixels,
            prefetch=self.dali_prefetch,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels = batch
        if images.ndim == 5:  # (B, 10, 3, S, S): the paper's test views, normalised already
            return batch
        trainer = getattr(self, "trainer", None)
        # uint8: for a GPU; float: normalised by the loader (a CPU-only fit; under a *-true
        # precision Lightning has cast it to that dtype already, before the transfer)
        images = self.on_device(
            images,
            train=trainer is not None and trainer.training,
            normalised=images.is_floating_point(),
            dtype=input_dtype(trainer, self.on_device.dtype),
        )
        return images, labels

    def train_dataloader(self) -> Iterable:
        self._train_loader = loader = self._loader("train", train=True)
        if states := self._train_state:  # one per rank (DALI's random state differs)
            loader.load_state_dict(states[loader.sampler.rank % len(states)])
            self._train_state = None
        return loader

    # Every rank's loader state also travels in the datamodule's (gathered: Lightning saves rank
    # 0's loader state only, and a loader built early for `estimated_stepping_batches` never
    # gets it back, Lightning 2.6). Lightning calls this on every rank when it saves.
    def state_dict(self) -> dict[str, Any]:
        states = [self._train_loader.state_dict()] if self._train_loader else []
        if states and torch.distributed.is_available() and torch.distributed.is_initialized():
            states = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, self._train_loader.state_dict())
        return {"train_loader": states} if states else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._train_state = state.get("train_loader")

    def val_dataloader(self) -> Iterable:
        return self._loader("val", train=False)

    def test_dataloader(self) -> Iterable:
        return self._loader("test" if self.has_test else "val", train=False, views=self.ten_crop)

    def _torch_loader(self, samples: list, transform: Any, order: EpochOrder, *, pin: bool):
        dataset = FileDataset(
            samples,
            transform,
            seed=self.seed,
            skip_corrupt=self.skip_corrupt,
            max_pixels=self.max_image_pixels,
        )
        pin = self.pin_memory and pin
        loader = TorchLoader(dataset, order, num_workers=self.num_workers, pin_memory=pin)
        self._torch_loaders.append(loader)
        return loader

    def teardown(self, stage: str) -> None:
        """The end of a fit, validate or test (Lightning calls it): the torch loaders' workers
        stop now, not at the exit of the process (see ``TorchLoader``)."""
        for loader in self._torch_loaders:
            loader.close()
        self._torch_loaders.clear()

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
        splits = ("train", "val", "test") if self.has_test else ("train", "val")
        images = {split: len(self.samples(split)) for split in splits}  # the one scan, kept
        return {"images": images, "loader": loader}


def batch_size(batch: tuple) -> int:
    """Images in one ``(images, labels)`` batch (for ``TrainThroughput``)."""
    return int(batch[0].shape[0])
