"""A checkpoint, opened safely and read through one typed interface (train resume, eval, predict,
export; the layout is ``alexlab.run.state``'s). Nothing stored in it is ever instantiated or
imported: the file is loaded with ``weights_only=True``, and the network is rebuilt only through
alexlab's own builder from values checked by the config schema; a stored ``_target_`` other than
that builder, an unknown key or a nested mapping is refused, naming the file, key and value
(docs/runs.md, "Checkpoints are data, never code")."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import torch
from torch import nn

from alexlab.config import ConfigError, validate_section

MODEL_BUILDER = "alexlab.models.alexnet.build"


# What a stored model setting may be: the config schema's own rules (``alexlab.config.schema``),
# so a range is written once. Weights always come from the checkpoint's state_dict (a stored
# `weights` path is never opened) and the network is never compiled when read back.
IGNORED_WHEN_READ = ("weights", "compile")
DATA_KEYS = ("image_size", "resize_size", "mean", "std")  # what predict and export read
# what torch.load raises on a truncated, tampered or foreign file
UNREADABLE = (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, UnpicklingError)


@dataclass(frozen=True)
class Checkpoint:
    """An opened checkpoint. ``open_checkpoint(path)`` makes one; the tensors stay
    memory-mapped until used."""

    path: Path
    key: str
    data: dict
    in_place: bool = False  # this run's own checkpoint: the run continues in its directory
    note: str = ""  # how it was chosen, when that needs saying (a damaged last.ckpt)

    def _refuse(self, what: str) -> ConfigError:
        return ConfigError(
            f"{self.key}={self.path}: {what}. alexlab never builds anything a checkpoint names; "
            f"use a checkpoint written by alexlab (a run's checkpoints/*.ckpt)."
        )

    @property
    def extra(self) -> dict:
        """What alexlab stores beside Lightning's state (``RunState``)."""
        extra = self.data.get("alexlab")
        return extra if isinstance(extra, dict) else {}

    @property
    def run_config(self) -> dict:
        run_config = self.extra.get("run_config")
        if not isinstance(run_config, dict) or not isinstance(run_config.get("model"), dict):
            raise self._refuse("it holds no alexlab run config (alexlab.run_config)")
        return run_config

    @property
    def global_step(self) -> int:
        return int(self.data.get("global_step", 0))

    @property
    def epochs_trained(self) -> int | None:
        """Epochs whose training batches all ran (None: a checkpoint that does not say)."""
        done = self.extra.get("epochs_done")
        return int(done) if isinstance(done, int) else None

    @property
    def logger_versions(self) -> dict[str, str]:
        """Each logger's run id (W&B's above all), so a resume continues the same run."""
        versions = self.extra.get("logger_versions") or {}
        return {str(k): str(v) for k, v in versions.items()}

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.data["state_dict"]

    def _checked(self, section: str, *, only: tuple[str, ...] | None = None) -> dict:
        """``run_config[section]`` (just ``only``'s keys, else every key) checked by the
        config schema; an unknown key is refused when every key is read."""
        stored = self.run_config.get(section)
        if not isinstance(stored, dict):
            raise self._refuse(f"run_config.{section} is missing")
        for name in only or stored:
            if isinstance(stored.get(name), dict):
                raise self._refuse(
                    f"run_config.{section}.{name} is a mapping (it may name code to run)"
                )
        try:
            return validate_section(section, stored, only=only, prefix=f"run_config.{section}")
        except ConfigError as e:
            raise self._refuse(str(e).split(". Set e.g.")[0]) from None

    def model_kwargs(self) -> dict[str, Any]:
        """The builder's keyword arguments, checked; ``_target_`` must be alexlab's builder."""
        target = self.run_config["model"].get("_target_")
        if target != MODEL_BUILDER:
            raise self._refuse(f"run_config.model._target_={target!r} is not {MODEL_BUILDER}")
        return {k: v for k, v in self._checked("model").items() if k not in IGNORED_WHEN_READ}

    def image_settings(self) -> dict[str, Any]:
        return self._checked("data", only=DATA_KEYS)

    @property
    def num_classes(self) -> int:
        return self.model_kwargs().get("num_classes", 1000)

    @property
    def class_names(self) -> list[str]:
        names = self.extra.get("class_names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self._refuse("class_names is not a list of strings")
        return names

    def check_classes(self, num_classes: int, *, key: str = "data.num_classes") -> None:
        if num_classes != self.num_classes:
            data = self.run_config.get("data") or {}
            raise ConfigError(
                f"{key}={num_classes} but {self.key}={self.path} was trained with "
                f"{self.num_classes} classes (on data.root={data.get('root')}). Use the data it "
                f"was trained on, or another checkpoint."
            )

    def build_module(self) -> Any:
        """An eval-only ``ClassificationModule`` around a network rebuilt by alexlab's builder
        from checked values, with the checkpoint's weights loaded."""
        from alexlab.models.alexnet import build
        from alexlab.module import ClassificationModule

        module = ClassificationModule(build(**self.model_kwargs()), num_classes=self.num_classes)
        try:
            module.load_state_dict(self.state_dict)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise self._refuse(f"its weights do not fit its own model config ({first})") from None
        return module

    def build_net(self) -> nn.Module:
        return self.build_module().net


def open_checkpoint(path: str | Path, key: str = "ckpt_path") -> Checkpoint:
    """Open ``path`` safely (``weights_only=True``, memory-mapped); a clear error otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{key}={path}: no such file. Pass the path of a .ckpt file, e.g. "
            f"{key}=runs/<run>/checkpoints/last.ckpt."
        )
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"{key}={path} is not a checkpoint (not a torch zip archive: truncated, or another "
            f"kind of file). Pick another file, e.g. the run's checkpoints/last.ckpt."
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except UNREADABLE as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{key}={path} is not a readable checkpoint ({reason}). It may be truncated, tampered "
            f"with (it holds objects a safe load refuses) or not a Lightning .ckpt; pick another "
            f"file, e.g. the run's checkpoints/last.ckpt."
        ) from None
    if not isinstance(data, dict) or "state_dict" not in data:
        raise ConfigError(
            f"{key}={path} holds no 'state_dict': it is not a Lightning checkpoint. "
            f"A plain weight file goes to model.weights=... instead."
        )
    return Checkpoint(path=path, key=key, data=data)
