"""Config and path checks that run before training starts.

Every failure is a `ConfigError` whose message names the key (or file) and the fix; the entry
points print it as one short paragraph instead of a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue


class InputError(Exception):
    """Bad input (config, path, data file): the message names it and the fix. The entry points
    print it as one paragraph, no traceback, headed ``alexlab: <kind>:``."""

    kind = "data error"


class ConfigError(InputError, ValueError):
    """A config value or path that cannot work. The message names the key and the fix."""

    kind = "config error"


class CorruptImageError(InputError):
    """An image file that cannot be decoded; the message names the file."""


def find_config_error(exc: BaseException | None) -> InputError | None:
    """The InputError behind ``exc`` (Hydra's ``instantiate`` wraps the ones it meets)."""
    while exc is not None:
        if isinstance(exc, InputError):
            return exc
        if isinstance(exc, MissingMandatoryValue):
            key = getattr(exc, "full_key", None) or "a key"
            return ConfigError(
                f"{key} has no value and no default: set {key}=... on the command line."
            )
        exc = exc.__cause__ or exc.__context__
    return None


def _last_line(message: str) -> str:
    """A DataLoader worker re-raises with the worker's traceback in the message: keep the
    original message only."""
    if "Original Traceback" not in message:
        return message
    last = message.strip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising a ConfigError met inside as itself."""
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except Exception as e:
        error = find_config_error(e)
        if error is None or error is e:
            raise
        raise error from None


def report_config_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """CLI wrapper: a ConfigError becomes one line on stderr and exit status 2, no traceback."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except Exception as e:
            error = find_config_error(e)
            if error is None:
                raise
            print(f"alexlab: {error.kind}: {_last_line(str(error))}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def require_positive(cfg: DictConfig, key: str, *, optional: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and optional:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key}={value} must be a positive number. Set e.g. {key}=<value > 0>.")


def require_dir(path: str | Path | None, key: str, hint: str) -> Path:
    if path is None or str(path) == "":
        raise ConfigError(f"{key} is not set. {hint}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(f"{key}={path}: no such directory. {hint}")
    return p


def check_devices(trainer_cfg: DictConfig) -> None:
    """GPUs asked for must be visible; the precision must run on the device it will run on."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    devices = trainer_cfg.get("devices", 1)
    gpus = torch.cuda.device_count()
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible here. Use trainer=cpu, "
            f"or trainer.accelerator=auto to take a GPU when there is one."
        )
    if on_gpu and isinstance(devices, int) and devices > gpus:
        raise ConfigError(
            f"trainer.devices={devices} but {gpus} GPU(s) are visible. Set trainer.devices<={gpus} "
            f"(-1: all), or check CUDA_VISIBLE_DEVICES."
        )
    precision = str(trainer_cfg.get("precision", "32-true"))
    if precision.startswith("16") and not on_gpu:
        raise ConfigError(
            f"trainer.precision={precision} (float16) needs a GPU. On the CPU use "
            f"trainer.precision=bf16-mixed or 32-true."
        )
    if precision.startswith("bf16") and on_gpu and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision={precision}: this GPU has no bfloat16 support (it needs compute "
            f"capability 8.0+). Use trainer.precision=16-mixed."
        )


def check_train_config(cfg: DictConfig) -> None:
    """Checks that need no data or model: run before anything is built."""
    check_devices(cfg.trainer)
    require_positive(cfg, "optimizer.lr")
    require_positive(cfg, "data.batch_size")
    require_positive(cfg, "data.global_batch_size", optional=True)
