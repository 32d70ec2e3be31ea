"""The rules that span keys, and those that depend on this machine (part of the validation
pass in ``alexlab.config.validate``). Each raises a ``ConfigError`` naming the key, the value
and the fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from alexlab.config.errors import ConfigError
from alexlab.metric_names import all_metric_names
from alexlab.run.identity import launch_id, torchrun_without_id


def show(value: Any) -> str:
    """A value as it is typed on the command line."""
    if isinstance(value, list | tuple) or OmegaConf.is_list(value):
        return "[" + ",".join(show(v) for v in value) + "]"
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=default)
    except Exception:  # an interpolation that cannot resolve yet
        return default


def check_model_and_images(cfg: DictConfig) -> None:
    size = _get(cfg, "data.image_size")
    groups, widths = _get(cfg, "model.groups"), _get(cfg, "model.widths")
    if groups == 2 and widths is not None and any(w % 2 for w in widths):
        raise ConfigError(
            f"model.widths={show(widths)} with model.groups=2: every width must be even (two "
            f"towers of equal width). Use even widths or model.groups=1."
        )
    weights = _get(cfg, "model.weights")
    if weights and not Path(weights).expanduser().is_file():
        raise ConfigError(f"model.weights={weights}: no such file. Pass a state_dict file path.")
    resize = _get(cfg, "data.resize_size")
    if isinstance(resize, int) and isinstance(size, int) and resize < size:
        raise ConfigError(
            f"data.resize_size={resize} is smaller than data.image_size={size}: the eval centre "
            f"crop would be cut from a smaller image. Set data.resize_size>={size}."
        )
    for key in ("data.scale", "data.ratio"):
        pair = _get(cfg, key)
        if pair is not None and len(pair) == 2 and pair[0] > pair[1]:
            raise ConfigError(
                f"{key}=[{pair[0]},{pair[1]}] is a (low, high) range; low > high. "
                f"Set {key}=[{pair[1]},{pair[0]}]."
            )


def check_sweep_strategy(cfg: DictConfig) -> None:
    """DDP that starts its ranks by running the command again (``start_method: popen``) would
    re-run the whole sweep in each rank, unless SLURM starts the ranks (submitit's launcher, or
    a sweep run by ``srun`` in each task)."""
    if _get(cfg, "hydra.mode") != RunMode.MULTIRUN or _get(cfg, "strategy.start_method") != "popen":
        return
    if "submitit" in str(_get(cfg, "hydra.launcher._target_")) or "SLURM_NTASKS" in os.environ:
        return
    raise ConfigError(
        "strategy=ddp inside a local sweep (-m) starts processes that re-run the whole sweep. "
        "Use strategy=ddp_spawn for multi-device sweeps on one machine, or "
        "hydra/launcher=slurm (each job its own SLURM allocation)."
    )


def check_trains_something(cfg: DictConfig) -> None:
    epochs, steps = _get(cfg, "trainer.max_epochs"), _get(cfg, "trainer.max_steps", -1)
    if _get(cfg, "trainer.fast_dev_run"):
        return
    if epochs == 0 or steps == 0:
        key, v = ("trainer.max_epochs", epochs) if epochs == 0 else ("trainer.max_steps", steps)
        raise ConfigError(f"{key}={v} trains nothing. Set {key} to 1 or more.")
    if epochs == -1 and steps == -1:
        raise ConfigError(
            "trainer.max_epochs=-1 with trainer.max_steps=-1 never ends. Set trainer.max_epochs "
            "to 1 or more, or trainer.max_steps to the number of optimizer steps."
        )
    if _get(cfg, "trainer.limit_train_batches") == 0:
        raise ConfigError(
            "trainer.limit_train_batches=0 trains nothing. Set it to a fraction (0.1) or a "
            "number of batches (20), or null for all."
        )


def check_run_name(cfg: DictConfig) -> None:
    """Every process of a launch names the same run directory (train: eval's own directory
    does not take ``run_name``)."""
    if "run_name" not in cfg or _get(cfg, "run_name") or launch_id() is not None:
        return
    if torchrun_without_id():
        raise ConfigError(
            "run_name is unset under torchrun without --rdzv-id: alexlab names the run "
            "directory after the rendezvous id, so each process would make its own. Pass "
            "torchrun --rdzv-id=<id> (the same on every node), or set run_name=<name>."
        )
    if (nodes := _get(cfg, "trainer.num_nodes") or 1) > 1:
        raise ConfigError(
            f"run_name is unset for a run on trainer.num_nodes={nodes} nodes outside SLURM and "
            f"torchrun: each node would name its own run directory and resume from its own. Set "
            f"run_name=<name>, the same on every node."
        )


def check_cross_keys(cfg: DictConfig) -> None:
    check_run_name(cfg)
    check_model_and_images(cfg)
    check_sweep_strategy(cfg)
    if "trainer" not in cfg:
        return
    check_trains_something(cfg)
    precision = str(_get(cfg, "trainer.precision", "32-true"))
    if _get(cfg, "data.fp16") and not precision.startswith("16"):  # 16-mixed, 16-true, 16
        raise ConfigError(
            f"data.fp16=true (float16 images) with trainer.precision={precision}: the first "
            f"convolution would meet float16 input and float32 weights. Set "
            f"trainer.precision=16-mixed, or data.fp16=false."
        )
    if _get(cfg, "optimizer.nesterov") and not _get(cfg, "optimizer.momentum"):
        raise ConfigError(
            "optimizer.nesterov=true needs optimizer.momentum > 0. Set optimizer.momentum=0.9 "
            "or optimizer.nesterov=false."
        )
    milestones = _get(cfg, "schedule.milestones_epochs")
    if milestones is not None and list(milestones) != sorted(milestones):
        raise ConfigError(
            f"schedule.milestones_epochs={show(milestones)} must increase. Set "
            f"schedule.milestones_epochs={show(sorted(milestones))}."
        )
    if _get(cfg, "trainer.enable_progress_bar") is False and _get(cfg, "callbacks.progress_bar"):
        raise ConfigError(
            "trainer.enable_progress_bar=false but callbacks.progress_bar is set (Lightning "
            "refuses the pair). Also pass ~callbacks.progress_bar, or keep the bar on."
        )
    monitor = str(cfg.get("monitor", ""))
    if _get(cfg, "trainer.limit_val_batches") == 0 and monitor.startswith("val/"):
        raise ConfigError(
            f"trainer.limit_val_batches=0 runs no validation, but monitor={cfg.monitor} (the "
            f"best checkpoint, metrics.json) needs it. Set trainer.limit_val_batches to a "
            f"fraction or a count > 0."
        )


def _world(cfg: DictConfig, gpus: Callable[[], int], on_gpu: bool) -> int | None:
    """Devices x nodes when it can be told from the config, else None."""
    devices, nodes = _get(cfg, "trainer.devices", 1), _get(cfg, "trainer.num_nodes", 1)
    if isinstance(devices, list | tuple) or OmegaConf.is_list(devices):
        count = len(devices)
    elif devices in (-1, "auto"):  # every visible GPU (before the int case: -1 is an int)
        count = gpus() if on_gpu else None
    elif isinstance(devices, int) and not isinstance(devices, bool):
        count = devices
    else:
        count = None
    return None if count is None or count < 1 else count * nodes


def check_hardware(cfg: DictConfig, *, cpus: int, gpus: Callable[[], int]) -> None:
    """What this machine can run: GPUs asked for, precision, devices, strategy."""
    if "trainer" not in cfg:
        return
    accelerator = str(_get(cfg, "trainer.accelerator", "auto"))
    devices = _get(cfg, "trainer.devices", 1)
    precision = str(_get(cfg, "trainer.precision", "32-true"))
    needs_gpu_info = accelerator in ("gpu", "cuda") or (
        accelerator == "auto"
        and (
            devices != 1
            or precision.startswith(("16", "bf16"))
            or _get(cfg, "trainer.sync_batchnorm")
        )
    )
    on_gpu = needs_gpu_info and gpus() > 0
    if accelerator in ("gpu", "cuda") and not on_gpu:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible here. Use trainer=cpu, "
            f"or trainer.accelerator=auto to take a GPU when there is one."
        )
    if on_gpu and isinstance(devices, int) and devices > gpus():
        raise ConfigError(
            f"trainer.devices={devices} but {gpus()} GPU(s) are visible. Set "
            f"trainer.devices<={gpus()} (-1: all), or check CUDA_VISIBLE_DEVICES."
        )
    if not on_gpu and isinstance(devices, int) and devices > cpus:
        raise ConfigError(
            f"trainer.devices={devices} on the CPU starts {devices} processes, but this machine "
            f"gives alexlab {cpus} CPU core(s). Set trainer.devices<={cpus}."
        )
    if precision.startswith("16") and not on_gpu:
        raise ConfigError(
            f"trainer.precision={precision} (float16) needs a GPU. On the CPU use "
            f"trainer.precision=bf16-mixed or 32-true."
        )
    if precision.startswith("bf16") and on_gpu:
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"trainer.precision={precision}: this GPU has no bfloat16 support (it needs "
                f"compute capability 8.0+). Use trainer.precision=16-mixed."
            )
    if _get(cfg, "trainer.sync_batchnorm") and not on_gpu:
        raise ConfigError(
            "trainer.sync_batchnorm=true needs CUDA devices (torch's SyncBatchNorm is CUDA-only). "
            "Set trainer.sync_batchnorm=null (per-rank BatchNorm on the CPU)."
        )
    check_world(cfg, _world(cfg, gpus, on_gpu))


def check_world(cfg: DictConfig, world: int | None) -> None:
    """Strategy and global batch against the number of processes."""
    strategy = str(_get(cfg, "strategy._target_", ""))
    if world == 1 and strategy.endswith("DDPStrategy"):
        raise ConfigError(
            "strategy=ddp (or ddp_spawn) with one device: DDP needs 2 or more processes. Set "
            "trainer.devices=2 (or more), or strategy=single."
        )
    global_batch, batch = _get(cfg, "data.global_batch_size"), _get(cfg, "data.batch_size")
    if world and isinstance(global_batch, int) and isinstance(batch, int):
        from alexlab.optim.batch_size import accumulation_steps

        accumulation_steps(global_batch_size=global_batch, batch_size=batch, world_size=world)


def check_monitor(cfg: DictConfig) -> None:
    if "monitor" not in cfg:
        return
    names = all_metric_names()
    for key in ("monitor", "schedule.monitor"):
        metric = _get(cfg, key)
        if metric is not None and metric not in names:
            raise ConfigError(
                f"{key}={metric} is not a logged metric; valid: {', '.join(names)}. "
                f"Set e.g. {key}=val/acc1."
            )


def check_steps(
    cfg: DictConfig, *, train_images: int, world_size: int, accumulation: int = 1
) -> int:
    """Optimizer-loop batches per epoch on each rank; zero is refused (a run that trains
    nothing and reports an untrained val/acc1). Each rank's epoch holds whole optimizer steps
    only (``data/order.py`` drops the remainder), so ``accumulation`` counts too."""
    batch = cfg.data.batch_size
    micro = train_images // (batch * world_size)
    whole = micro // accumulation * accumulation
    steps = whole
    limit = _get(cfg, "trainer.limit_train_batches")
    if isinstance(limit, float):
        steps = int(steps * limit)
    elif isinstance(limit, int):
        steps = min(steps, limit)
    if whole == 0 and accumulation > 1:
        raise ConfigError(
            f"data.global_batch_size={_get(cfg, 'data.global_batch_size')} needs {accumulation} "
            f"micro-batches of {batch} x {world_size} device(s) per optimizer step, but "
            f"{train_images} training images make {micro}: no whole step. Set a smaller "
            f"data.global_batch_size (at most {max(1, micro) * batch * world_size}) or use more "
            f"data."
        )
    if steps == 0 and not _get(cfg, "trainer.fast_dev_run"):
        fit = max(1, train_images // world_size)
        raise ConfigError(
            f"data.batch_size={batch} x {world_size} device(s) gives 0 training steps per epoch "
            f"on {train_images} training images (the last partial batch is dropped"
            + (f", and trainer.limit_train_batches={limit}" if limit is not None else "")
            + f"). Set data.batch_size<={fit} or use more data."
        )
    return steps
