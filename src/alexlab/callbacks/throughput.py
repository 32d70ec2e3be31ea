"""Training images/s (and FLOP/s, MFU on GPUs Lightning knows) without a GPU sync per step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.throughput import Throughput, get_available_flops
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only

from alexlab.data.datamodule import batch_size as images_in
from alexlab.loggers import logger_step

PRECISION_DTYPE = {"bf16": torch.bfloat16, "16": torch.float16, "64": torch.float64}
# Peak FLOP/s of GPUs that Lightning 2.6's FLOPs table misses: torch names an H200 SXM "NVIDIA
# H200" (an H200 NVL "NVIDIA H200 NVL"), and `get_available_flops` looks for "sxm1"/"nvl1" in
# the name, so it warns and gives no MFU. NVIDIA's H200 datasheet ("Technical Specifications",
# https://www.nvidia.com/en-us/data-center/h200/) gives the tensor-core figures with 2:4
# sparsity; a dense network's peak is half of them (SXM: TF32 989, BF16/FP16 1,979 TFLOPS sparse;
# NVL: 835 and 1,671). FP32 and FP64 are dense already. Longest name first.
PEAK_DTYPES = (torch.float64, torch.float32, "tfloat32", torch.bfloat16, torch.float16)
GPU_PEAKS: dict[str, tuple[float, ...]] = {  # in PEAK_DTYPES' order
    "h200 nvl": (30e12, 60e12, 417.5e12, 835.5e12, 835.5e12),
    "h200": (34e12, 67e12, 494.5e12, 989.5e12, 989.5e12),
}


def peak_flops(device: torch.device, dtype: torch.dtype | str) -> float | None:
    """The device's peak FLOP/s in ``dtype``: ``GPU_PEAKS`` where the name matches, else
    Lightning's table (None, with its warning, where neither knows the device)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        chip = next((c for c in GPU_PEAKS if c in name), None)
        if chip is not None:
            return dict(zip(PEAK_DTYPES, GPU_PEAKS[chip], strict=True)).get(dtype)
    return get_available_flops(device, dtype)


def peak_dtype(precision: str, *, tf32: bool) -> torch.dtype | str:
    """The number format whose peak FLOP/s MFU is read against (Lightning's FLOPs table keys).

    ``bf16-mixed``/``16-mixed`` run convolutions and matmuls in 16 bits. Under ``32-true`` nearly
    all of AlexNet's FLOPs are convolutions, which cuDNN runs on TF32 tensor cores wherever
    ``torch.backends.cudnn.allow_tf32`` (the default) on Ampere or later (``tf32``): reading them
    against the FP32 peak would overstate MFU about 8-fold.
    """
    dtype = PRECISION_DTYPE.get(str(precision).split("-")[0], torch.float32)
    return "tfloat32" if dtype is torch.float32 and tf32 else dtype


class TrainThroughput(L.Callback):
    """Lightning's ``Throughput`` meter (samples/s, FLOP/s and MFU where known) on the logger's
    steps. Lightning's ``ThroughputMonitor`` synchronises the GPU after every batch to time it,
    keeping the CPU from queueing the next step; this one synchronises only when it logs, timing
    the interval since the last log (``window_size`` logs: 2 = the last interval), validation
    left out. FLOPs: ``pl_module.flops_per_batch`` (``LayerSummary``)."""

    def __init__(
        self, batch_size_fn: Callable[[Any], int] = images_in, window_size: int = 2
    ) -> None:
        self.batch_size_fn, self.window_size = batch_size_fn, window_size

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = trainer.strategy.root_device
        ampere = device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8
        tf32 = ampere and torch.backends.cudnn.allow_tf32
        peak = peak_flops(device, peak_dtype(trainer.precision, tf32=tf32))
        self.meter = Throughput(
            available_flops=peak, world_size=trainer.world_size, window_size=self.window_size
        )
        self.elapsed, self.samples, self.batches, self.unlogged = 0.0, 0, 0, 0
        self.last_step, self.t0 = trainer.global_step, time.perf_counter()

    def _clock(self, trainer: L.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # only here: once per logged interval
        now = time.perf_counter()
        self.elapsed += now - self.t0
        self.t0 = now
        return self.elapsed

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.samples += self.batch_size_fn(batch)
        self.batches += 1
        self.unlogged += 1
        stepped, self.last_step = trainer.global_step != self.last_step, trainer.global_step
        if not stepped or not logger_step(trainer, done=True):  # accumulating, or not logging
            return
        flops = getattr(pl_module, "flops_per_batch", None)
        self.meter.update(
            time=self._clock(trainer),
            batches=self.batches,
            samples=self.samples,
            flops=None if flops is None else flops * self.unlogged,
        )
        self.unlogged = 0
        self._log(trainer)

    @rank_zero_only
    def _log(self, trainer: L.Trainer) -> None:
        metrics = {f"train/{k}": v for k, v in self.meter.compute().items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and hasattr(self, "meter"):
            self._clock(trainer)  # the train time so far; the clock stops during validation

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()
