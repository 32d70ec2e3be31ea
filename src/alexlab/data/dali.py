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
    ):
        jpegs, labels = _reader(file_root, shard_id=shard_id, num_shards=num_shards, train=True)
        decoder = dict(device="mixed" if gpu else "cpu", output_type=types.RGB)
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
        build: ``build(epoch) -> Pipeline`` for this rank's shard (``epoch`` varies the seed
            when the pipeline has to be rebuilt).
        batch_size: images per batch on this rank.
        shard_id, num_shards: this rank and the world size.
        train: drop the last partial batch (train) or keep it (eval).

    ``len()`` is, for training, ``N // (num_shards * batch_size)``: the same on every rank, so
    DDP ranks step together; for evaluation, the batches of this rank's shard (every sample
    once across ranks, the last batch partial).

    DALI iterators cannot be reset mid-epoch. When Lightning stops an epoch early
    (``limit_train_batches``, an interrupted run), the next ``iter()`` rebuilds the pipeline;
    after a full epoch, the one or two batches a larger shard may hold beyond ``steps`` are
    drained so the iterator resets itself.
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
    ) -> None:
        self.channels_last = channels_last  # pipeline emits NHWC: hand out an NCHW view of it
        self.file_root = file_root  # scanned to name the file when DALI cannot decode one
        self._build = build
        self.train = train
        self._epoch = 0
        self._iterator: DALIGenericIterator | None = self._new_iterator()  # built now: len()
        self._complete = True
        total = self.num_samples
        if train:
            self.steps = total // (num_shards * batch_size)
        else:  # DALI's shard bounds: [floor(N * i / S), floor(N * (i + 1) / S))
            shard = total * (shard_id + 1) // num_shards - total * shard_id // num_shards
            self.steps = -(-shard // batch_size)

    @property
    def num_samples(self) -> int:
        """Images in the whole split (all shards)."""
        return int(self._pipe.epoch_size(READER))

    def __len__(self) -> int:
        return self.steps

    def _new_iterator(self) -> DALIGenericIterator:
        self._pipe = self._build(self._epoch)
        self._pipe.build()
        try:  # the iterator runs the first batch now
            return DALIGenericIterator(
                [self._pipe],
                ["images", "labels"],
                reader_name=READER,
                auto_reset=True,
                last_batch_policy=LastBatchPolicy.DROP if self.train else LastBatchPolicy.PARTIAL,
            )
        except RuntimeError as e:
            raise self._decode_error(e) from None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._iterator is None or not self._complete:
            self._iterator = self._new_iterator()
        self._complete = False
        self._epoch += 1
        produced = 0
        try:
            for data in self._iterator:
                if produced == self.steps:
                    continue  # drain this shard's surplus so the iterator resets itself
                produced += 1
                out = data[0]
                images = out["images"]  # (B, 3, S, S), or (B, S, S, 3) with channels_last
                if self.channels_last:
                    images = images.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
                yield images, out["labels"].reshape(-1).long()
        except RuntimeError as e:
            raise self._decode_error(e) from None
        self._complete = True

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
