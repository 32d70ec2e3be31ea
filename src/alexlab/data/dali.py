"""NVIDIA DALI pipelines over alexlab's file list, and a loader that Lightning can drive.

Both read the rank's files in ``order.EpochOrder``'s order (``files``/``labels``, no reader
shuffle), decode (``mixed``: nvJPEG and the hardware decoder on a GPU; else ``cpu``) and emit
NCHW (NHWC with ``channels_last``) crops: uint8 for a GPU, float normalised on the CPU backend.
An image whose header (``fn.peek_image_shape``) says it is above the pixel limit is never
decoded: a conditional swaps its bytes for a tiny stand-in JPEG before the decoder, and the
loader refuses the batch, naming the file (as PIL refuses a decompression bomb).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from alexlab.data.augment import Augment
from alexlab.data.images import image_problem
from alexlab.data.order import EpochOrder, mix_seed
from alexlab.data.sources import bad_files_error

try:
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali import math as dali_math
    from nvidia.dali.pipeline import Pipeline
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    DALI_AVAILABLE = True
except ImportError:  # not installable on this platform (macOS, aarch64 without a wheel)
    DALI_AVAILABLE = False

READER = "Reader"
# nvJPEG buffer sizes that hold every full-sized ImageNet image without reallocation: the values
# of NVIDIA's DeepLearningExamples RN50 DALI pipeline (PyTorch/Classification/ConvNets,
# image_classification/dali.py), whose main.py runs 5 loader threads per GPU (--workers 5).
DEVICE_MEMORY_PADDING = 211_025_920
HOST_MEMORY_PADDING = 140_544_512
PADDING_THREADS = 5


@functools.cache
def _stand_in() -> np.ndarray:
    """The bytes of an 8x8 black JPEG, decoded in place of an oversized image."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG")
    return np.frombuffer(out.getvalue(), np.uint8).copy()


def _read(files: list[str], labels: list[int], gpu: bool, max_pixels: int):
    """-> encoded images (oversized ones swapped for the stand-in), labels, oversized flags."""
    jpegs, labels = fn.readers.file(
        files=files, labels=labels, random_shuffle=False, pad_last_batch=True, name=READER
    )
    shape = fn.peek_image_shape(jpegs, dtype=types.INT64)  # (H, W, C) from the header alone
    too_large = shape[0] * shape[1] > max_pixels
    if too_large:  # DALI conditional (CPU data only): never decode it
        jpegs = types.Constant(_stand_in(), device="cpu")
    return jpegs, (labels.gpu() if gpu else labels), too_large


def _decoder(gpu: bool, hw_decoder_load: float, threads: int | None = None) -> dict[str, Any]:
    """The decoder's settings; ``threads``: the pipeline's (None: the one being defined).

    ``mixed``: DALI preallocates nvJPEG's buffers per thread (one device and two pinned host
    buffers; ``fn.decoders.image``'s docs). NVIDIA's values at 16 threads would take 3.4 GB of
    device memory and 4.5 GB pinned per rank, so their total at their thread count stays the
    budget, shared among more threads: a thread that meets a larger image reallocates once.
    """
    if not gpu:
        return dict(device="cpu", output_type=types.RGB)
    share = min(1.0, PADDING_THREADS / max(1, threads or Pipeline.current().num_threads))
    return dict(
        device="mixed",
        output_type=types.RGB,
        hw_decoder_load=hw_decoder_load,
        device_memory_padding=int(DEVICE_MEMORY_PADDING * share),
        host_memory_padding=int(HOST_MEMORY_PADDING * share),
    )


def _output(augment: Augment, uint8: bool, channels_last: bool) -> dict[str, Any]:
    """``crop_mirror_normalize``'s output: uint8 (for a GPU: normalised on the device after a 4x
    smaller copy) or float normalised here (on the CPU backend, in DALI's threads)."""
    layout = "HWC" if channels_last else "CHW"
    if uint8:
        return dict(dtype=types.UINT8, output_layout=layout)
    scaled = {k: [255 * v for v in getattr(augment, k)] for k in ("mean", "std")}
    return dict(dtype=types.FLOAT, output_layout=layout, **scaled)


if DALI_AVAILABLE:
    # checkpointing: its state goes into Lightning's checkpoints; conditionals: `_read`'s `if`
    @pipeline_def(enable_checkpointing=True, enable_conditionals=True)
    def train_pipeline(
        *,
        files: list[str],
        labels: list[int],
        gpu: bool,
        uint8: bool,
        augment: Augment,
        fast_idct: bool,
        hw_decoder_load: float,
        channels_last: bool,
        max_pixels: int,
    ):
        jpegs, labels, too_large = _read(files, labels, gpu, max_pixels)
        # use_fast_idct: libjpeg-turbo's integer IDCT on the CPU path (mixed: only for images
        # nvJPEG cannot take); up to 14% faster decoding per libjpeg-turbo's docs
        decoder = dict(_decoder(gpu, hw_decoder_load), use_fast_idct=fast_idct)
        a, crop = augment, {}
        if a.crop == "random_resized":
            images = fn.decoders.image_random_crop(
                jpegs,
                random_area=list(a.scale),
                random_aspect_ratio=list(a.ratio),
                num_attempts=100,
                **decoder,
            )
            images = fn.resize(images, resize_x=a.image_size, resize_y=a.image_size)
        else:  # paper: shorter side to resize_size, central square, random S x S crop
            # = the central min(H, W) square, resized to R x R: only that region is decoded
            # (ROI decode: libjpeg-turbo skips the rows and columns outside it)
            shape = fn.peek_image_shape(jpegs, dtype=types.FLOAT)  # (H, W, C), of the stand-in too
            side = dali_math.min(shape[0], shape[1])
            images = fn.decoders.image_crop(jpegs, crop_w=side, crop_h=side, **decoder)
            images = fn.resize(images, resize_x=a.resize_size, resize_y=a.resize_size)
            crop = dict(
                crop=(a.image_size, a.image_size),
                crop_pos_x=fn.random.uniform(range=(0.0, 1.0)),
                crop_pos_y=fn.random.uniform(range=(0.0, 1.0)),
            )
        mirror = fn.random.coin_flip(probability=a.hflip_prob) if a.hflip_prob > 0 else 0
        images = fn.crop_mirror_normalize(
            images, mirror=mirror, **crop, **_output(a, uint8, channels_last)
        )
        return images, labels, too_large

    @pipeline_def(enable_conditionals=True)
    def eval_pipeline(
        *,
        files: list[str],
        labels: list[int],
        gpu: bool,
        uint8: bool,
        augment: Augment,
        hw_decoder_load: float,
        channels_last: bool,
        max_pixels: int,
    ):
        jpegs, labels, too_large = _read(files, labels, gpu, max_pixels)
        images = fn.decoders.image(jpegs, **_decoder(gpu, hw_decoder_load))
        images = fn.resize(images, resize_shorter=augment.resize_size)
        images = fn.crop_mirror_normalize(
            images,
            crop=(augment.image_size, augment.image_size),
            **_output(augment, uint8, channels_last),
        )  # centred
        return images, labels, too_large


class DaliLoader:
    """Iterable of ``(images (B, 3, S, S), labels int64 (B,))`` for ``order``'s slice (this
    rank's ``EpochOrder``, the ``sampler``: Lightning calls its ``set_epoch``).

    Each ``iter()`` builds the epoch's pipeline, ``build(files=, labels=, max_pixels=, seed=,
    checkpoint=)``, seeded by ``(seed, rank, epoch)``, over the epoch's files; it never decodes an
    image above ``max_pixels``, and the loader refuses it, naming the file. ``channels_last``:
    the pipeline emits NHWC, handed out as an NCHW view; ``prefetch``: its prefetch depth.
    ``state_dict()`` adds DALI's own checkpoint (reader position and random state) to the
    order's, so a resumed epoch continues at the next unseen batch with the same augmentation as
    an uninterrupted one, decoding nothing twice.
    """

    batch_sampler = None  # (Lightning looks for it next to `sampler`)

    def __init__(
        self,
        build: Callable[..., Pipeline],
        order: EpochOrder,
        samples: list[tuple[str, int]],
        *,
        channels_last: bool = False,
        max_pixels: int,
        prefetch: int = 2,
    ) -> None:
        self._build, self.sampler, self.samples = build, order, samples
        self.channels_last, self.max_pixels, self.prefetch = channels_last, max_pixels, prefetch
        self._iterator: Any = None
        self._resume: dict[str, Any] = {}

    def __len__(self) -> int:
        return self.sampler.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler
        start = order.consumed if order.train else 0
        if start >= order.steps:
            return  # resumed at the very end of the epoch
        indices = order.indices()
        checkpoint = (
            self._resume.pop("dali", None) if self._resume.get("epoch") == order.epoch else None
        )
        chosen = indices if checkpoint or not start else indices[start * order.batch_size :]
        iterator, batch = None, start  # batch: the next batch of `indices` to come
        try:
            pipe = self._build(
                files=[self.samples[i][0] for i in chosen],
                labels=[self.samples[i][1] for i in chosen],
                max_pixels=self.max_pixels,
                seed=mix_seed(order.seed, order.rank, order.epoch) % 2**31,  # DALI's seed range
                checkpoint=checkpoint,
            )
            iterator = DALIGenericIterator(
                [pipe],
                ["images", "labels", "too_large"],
                reader_name=READER,
                last_batch_policy=LastBatchPolicy.DROP if order.train else LastBatchPolicy.PARTIAL,
            )
            self._iterator = iterator
            for data in iterator:
                out = data[0]
                if too_large := out["too_large"].reshape(-1).nonzero().flatten().tolist():
                    files = self._files(indices, batch, 1)
                    files = [files[i] for i in too_large]  # (flagged: the images not decoded)
                    bad = [(f, image_problem(f, self.max_pixels) or "too large") for f in files]
                    raise bad_files_error(bad)
                batch += 1
                images = out["images"]  # (B, 3, S, S), or (B, S, S, 3) with channels_last
                if self.channels_last:
                    images = images.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
                order.consumed += order.train
                yield images, out["labels"].reshape(-1).long()
        # DALI's decoder errors do not say which file: check the batches it may have been
        # preparing (the next one and the prefetched ones)
        except RuntimeError as e:
            files = self._files(indices, batch, self.prefetch + 1)
            problems = [(f, why) for f in files if (why := image_problem(f, self.max_pixels))]
            raise (bad_files_error(problems) if problems else e) from None
        finally:  # (an epoch cut short ends here when its generator is collected)
            if self._iterator is iterator:
                self._iterator = None

    def _files(self, indices: list[int], first_batch: int, batches: int) -> list[str]:
        b = self.sampler.batch_size
        return [self.samples[i][0] for i in indices[first_batch * b : (first_batch + batches) * b]]

    def state_dict(self) -> dict[str, Any]:
        state = self.sampler.state_dict()
        if self._iterator is not None and self.sampler.train:
            state.update(dali=self._iterator.checkpoints()[0], rank=self.sampler.rank)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        if state.get("rank", self.sampler.rank) == self.sampler.rank:  # never another rank's
            self._resume = dict(state)
