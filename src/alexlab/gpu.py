"""GPU settings applied once when a run starts, and the warning when a GPU goes unused."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")  # written by the NVIDIA kernel module


def set_matmul_precision(trainer: L.Trainer, precision: str) -> None:
    """``torch.set_float32_matmul_precision(precision)`` where the run is on a CUDA GPU (``high``:
    TF32 matmuls, as cuDNN already runs float32 convolutions); the CPU keeps full float32."""
    if trainer.strategy.root_device.type == "cuda":
        torch.set_float32_matmul_precision(precision)


def nvidia_driver() -> str | None:
    """The NVIDIA driver this machine runs (e.g. ``"535.104.05"``), or None where there is none."""
    if NVIDIA_DRIVER_FILE.is_file():
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..."
        words = NVIDIA_DRIVER_FILE.read_text().split()
        return next((w for w in words if w[:1].isdigit() and "." in w), "of unknown version")
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "of unknown version (nvidia-smi did not answer)"
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "of unknown version"
    return None


def warn_if_gpu_unused(trainer: L.Trainer, accelerator: str) -> None:
    """Warn when ``accelerator=auto`` chose the CPU on a machine with an NVIDIA driver (torch
    cannot use it), instead of training on the CPU in silence."""
    if accelerator != "auto" or trainer.strategy.root_device.type != "cpu":
        return
    if (driver := nvidia_driver()) is not None:
        rank_zero_warn(
            f"[alexlab] trainer.accelerator=auto is training on the CPU, yet this machine has "
            f"NVIDIA driver {driver}: torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda}) cannot use it, most often because the driver is older than "
            "that CUDA needs. Update the driver, or install a torch build for the CUDA this driver "
            "supports (https://pytorch.org/get-started/locally/); set trainer=cpu to train on the "
            "CPU on purpose."
        )


def sync_then_compile(
    net: nn.Module, *, sync: bool, compile: bool, backend: Any = "inductor"
) -> nn.Module:
    """Convert BatchNorm to SyncBatchNorm (``sync``), then ``torch.compile`` (``compile``), in this
    order: compiling first would trace plain BatchNorm, and the conversion replaces the layers
    under the compiled wrapper. ``backend``: ``torch.compile``'s."""
    if sync:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        rank_zero_info("[alexlab] BatchNorm synchronised across ranks")
    if compile:
        net.compile(backend=backend)
    return net


class PerProcessSettings(L.Callback):
    """``model.compile`` (with ``backend``) and ``float32_matmul_precision`` (CUDA only), applied
    by each process that trains (Lightning's ``setup`` runs in each, before the first batch):
    under ``ddp_spawn`` a child gets a pickled module without its compiled call."""

    def __init__(
        self,
        *,
        compile: bool = False,
        matmul_precision: str | None = None,
        backend: Any = "inductor",
    ) -> None:
        self.compile, self.matmul_precision, self.backend = compile, matmul_precision, backend
        # (process, network) pairs compiled: once per process (validate/test after fit call
        # setup again); a spawned child has its own process id, so it compiles its copy
        self._compiled: set[tuple[int, int]] = set()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.matmul_precision:
            set_matmul_precision(trainer, self.matmul_precision)
        key = (os.getpid(), id(pl_module.net))
        if self.compile and key not in self._compiled:
            sync_then_compile(pl_module.net, sync=False, compile=True, backend=self.backend)
            self._compiled.add(key)
