"""NVIDIA DALI pipelines for class-folder trees, and a loader that Lightning can drive.

Train: file reader (sharded by global rank, shuffled, padded) -> random-crop JPEG decode
(``mixed`` = nvJPEG on the GPU, ``cpu`` elsewhere) -> resize -> coin-flip mirror ->
``crop_mirror_normalize`` to NCHW (NHWC with ``channels_last``) float32/float16.
Eval: decode -> resize shorter side -> centre crop -> normalise.

The settings are the torch loader's (``torch_loader.train_transform``), so either backend can
run the same experiment. ``DaliLoader`` yields ``(images, labels int64)`` with a ``len()`` that
is the same on every rank and survives epochs cut short by ``limit_train_batches``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

try:
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.pipeline import Pipeline
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    DALI_AVAILABLE = True
except ImportError:  # not installable on this platform (macOS, aarch64 without a wheel)
    DALI_AVAILABLE = False

READER = "Reader"


def _normalize_args(
    mean: Sequence[float], std: Sequence[float], *, fp16: bool, channels_last: bool
) -> dict:
    return dict(
        dtype=types.FLOAT16 if fp16 else types.FLOAT,
        output_layout="HWC" if channels_last else "CHW",
        mean=[255 * m for m in mean],  # DALI works on 0..255 pixels
        std=[255 * s for s in std],
    )


def _reader(file_root: Path, *, shard_id: int, num_shards: int, train: bool):
    return fn.readers.file(
        file_root=str(file_root),
        shard_id=shard_id,
        num_shards=num_shards,
        random_shuffle=train,  # the file list is also shuffled once up front when True
        pad_last_batch=True,
        name=READER,
    )


if DALI_AVAILABLE:

    @pipeline_def
    def train_pipeline(
        *,
        file_root: Path,
        shard_id: int,
        num_shards: int,
        gpu: bool,
        image_size: int,
        crop: str,
        resize_size: int,
        scale: Sequence[float],
        ratio: Sequence[float],
        hflip_prob: float,
        mean: Sequence[float],
        std: Sequence[float],
        fp16: bool = False,
        channels_last: bool = False,
        fast_idct: bool = False,
    ):
        jpegs, labels = _reader(file_root, shard_id=shard_id, num_shards=num_shards, train=True)
        # use_fast_idct: libjpeg-turbo's integer fast IDCT on the CPU path (mixed: only for the
        # images nvJPEG cannot take); up to 14% faster decoding per libjpeg-turbo's docs
        decoder = dict(device="mixed" if gpu else "cpu", output_type=types.RGB,
                       use_fast_idct=fast_idct)  # fmt: skip
        if gpu:
            decoder["hw_decoder_load"] = 0.65  # share of images for the A100/H100 JPEG engine
        crop_args: dict[str, Any] = {}
        if crop == "random_resized":
            images = fn.decoders.image_random_crop(
                jpegs, random_area=list(scale), random_aspect_ratio=list(ratio),
                num_attempts=100, **decoder,
            )  # fmt: skip
            images = fn.resize(images, resize_x=image_size, resize_y=image_size)
        elif crop == "paper":  # shorter side to 256, central square, random S x S crop
            images = fn.decoders.image(jpegs, **decoder)
            images = fn.resize(images, resize_shorter=resize_size)
            images = fn.crop(images, crop=(resize_size, resize_size))
            crop_args = dict(
                crop=(image_size, image_size),
                crop_pos_x=fn.random.uniform(range=(0.0, 1.0)),
                crop_pos_y=fn.random.uniform(range=(0.0, 1.0)),
            )
        else:
            raise ValueError(f"data.crop={crop!r} is unknown; valid: random_resized, paper")
        mirror = fn.random.coin_flip(probability=hflip_prob) if hflip_prob > 0 else 0
        images = fn.crop_mirror_normalize(
            images, mirror=mirror, **crop_args,
            **_normalize_args(mean, std, fp16=fp16, channels_last=channels_last),
        )  # fmt: skip
        return images, labels

    @pipeline_def
    def eval_pipeline(
        *,
        file_root: Path,
        shard_id: int,
        num_shards: int,
        gpu: bool,
        image_size: int,
        resize_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        fp16: bool = False,
        channels_last: bool = False,
    ):
        jpegs, labels = _reader(file_root, shard_id=shard_id, num_shards=num_shards, train=False)
        images = fn.decoders.image(jpegs, device="mixed" if gpu else "cpu", output_type=types.RGB)
        images = fn.resize(images, resize_shorter=resize_size)
        images = fn.crop_mirror_normalize(
            images, crop=(image_size, image_size),  # centred: crop_pos 0.5
            **_normalize_args(mean, std, fp16=fp16, channels_last=channels_last),
        )  # fmt: skip
        return images, labels


class DaliLoader:
    """Iterable of ``(images, labels int64 (B,))`` over a DALI pipeline.

    Args:
        build: ``build(epoch) -> Pipeline`` for this rank's shard; the seed is a function of
            the epoch, so epoch ``e`` reads and augments the same way in any process.
        batch_size: images per batch on this rank.
        shard_id, num_shards: this rank and the world size.
        train: drop the last partial batch (train) or keep it (eval).
        file_root: the split's folder, scanned to name a file DALI cannot decode.
        channels_last: the pipeline emits NHWC; hand out an NCHW view of it.
        epoch: the current epoch (the trainer's); batches_done: batches of it already trained
            (non-zero only when resuming from a mid-epoch checkpoint).

    ``len()`` is, for training, ``N // (num_shards * batch_size)``: the same on every rank, so
    DDP ranks step together; for evaluation, the batches of this rank's shard (every sample
    once across ranks, the last batch partial). Each ``iter()`` builds the epoch's pipeline
    afresh (DALI cannot reset mid-epoch, and a fresh pipeline per epoch makes a resumed run
    exact): on resume it runs and discards the batches already trained.
    """

    def __init__(
        self,
        build: Callable[[int], Pipeline],
        *,
        batch_size: int,
        shard_id: int = 0,
        num_shards: int = 1,
        train: bool,
        file_root: Path | None = None,
        channels_last: bool = False,
        epoch: Callable[[], int] = lambda: 0,
        batches_done: Callable[[], int] = lambda: 0,
    ) -> None:
        self._build, self.train, self.file_root = build, train, file_root
        self.channels_last = channels_last
        self._epoch, self._batches_done = epoch, batches_done
        pipe = build(0)
        pipe.build()
        total = int(pipe.epoch_size(READER))  # images in the whole split (all shards)
        del pipe
        self.num_samples = total
        if train:
            self.steps = total // (num_shards * batch_size)
        else:  # DALI's shard bounds: [floor(N * i / S), floor(N * (i + 1) / S))
            shard = total * (shard_id + 1) // num_shards - total * shard_id // num_shards
            self.steps = -(-shard // batch_size)

    def __len__(self) -> int:
        return self.steps

    def _new_iterator(self, epoch: int) -> DALIGenericIterator:
        pipe = self._build(epoch)
        pipe.build()
        try:  # the iterator runs the first batch now
            return DALIGenericIterator(
                [pipe],
                ["images", "labels"],
                reader_name=READER,
                last_batch_policy=LastBatchPolicy.DROP if self.train else LastBatchPolicy.PARTIAL,
            )
        except RuntimeError as e:
            raise self._decode_error(e) from None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        iterator = self._new_iterator(self._epoch())
        skip = self._batches_done() if self.train else 0
        try:
            for i, data in enumerate(iterator):
                if i >= self.steps:
                    break  # a larger shard's surplus batch: ranks stay in step
                if i < skip:
                    continue  # trained before the checkpoint this run resumed from
                out = data[0]
                images = out["images"]  # (B, 3, S, S), or (B, S, S, 3) with channels_last
                if self.channels_last:
                    images = images.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
                yield images, out["labels"].reshape(-1).long()
        except RuntimeError as e:
            raise self._decode_error(e) from None

    def _decode_error(self, error: RuntimeError) -> Exception:
        """DALI's decoder errors do not say which file; find it (or them) in the split."""
        from alexlab.checks import CorruptImageError
        from alexlab.data.verify import verify_tree

        root = getattr(self, "file_root", None)
        if root is None or "decod" not in str(error).lower() and "codec" not in str(error).lower():
            return error
        _, problems = verify_tree(Path(root))
        if not problems:
            return error
        named = "; ".join(f"{p.path}: {p.reason}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return CorruptImageError(
            f"DALI could not decode an image in {root}: {named}{more}. Remove or replace them "
            f"(`python -m alexlab.data verify ROOT` lists all), or set data.skip_corrupt=true "
            f"(skips and counts them; uses the torch loader)."
        )
