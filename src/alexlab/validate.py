"""One validation pass over a composed config, before anything is built.

``validate_config(cfg)`` checks every value against its group's table in ``alexlab.schema``,
then the rules that span keys (16-bit images need 16-bit precision, the global batch divides
into devices, the image is large enough for the network, what this machine can run). The first
failure is a ``ConfigError`` naming the key, the value, what is allowed and the fix.

The CLI runs it from a Hydra callback (``ValidateOnStart``, in ``conf/hydra/default.yaml``)
before Hydra makes the run directory, and before torch or Lightning are imported;
``alexlab.train.train(cfg)`` runs it again for callers that skip the CLI.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from alexlab import schema
from alexlab.checks import ConfigError
from alexlab.validate_rules import check_cross_keys, check_hardware, check_monitor

_UNREADABLE = object()  # a value that cannot be resolved yet (${hydra:...} before the run)


def value(node: Any, key: str) -> Any:
    """``node[key]`` resolved, or ``_UNREADABLE``."""
    try:
        item = node[key]
        return OmegaConf.to_container(item, resolve=True) if OmegaConf.is_list(item) else item
    except OmegaConfBaseException:
        return _UNREADABLE


def _readable(node: Any) -> dict[str, Any]:
    return {k: v for k in node if (v := value(node, k)) is not _UNREADABLE}


def _table(node: Any, tables: dict[str, dict]) -> dict | None:
    """The table for ``node``'s ``_target_``; None for a target alexlab has no table for (a
    user's own class: its constructor checks its arguments)."""
    return tables.get(str(node.get("_target_")))


def _check_collection(group: str, node: Any) -> None:
    """logger / callbacks: a mapping of name -> {_target_: ...} (or null to drop one)."""
    for name in node:
        item = value(node, name)
        if item is None or item is _UNREADABLE:
            continue
        if not isinstance(item, DictConfig) or "_target_" not in item:
            raise ConfigError(
                f"{group}.{name}={schema.show(item)} is not a {group[:-1]} (it has no _target_). "
                f"Remove it with ~{group}.{name}, or pick a group option: {group}=<option>."
            )


def check_groups(cfg: DictConfig) -> None:
    """Each group's values against its table."""
    data = cfg.get("data")
    if isinstance(data, DictConfig) and (table := _table(data, schema.DATA)):
        schema.check_table("data", _readable(data), table, closed=True)
        if isinstance(data.get("source"), DictConfig):
            schema.check_table("data.source", _readable(data.source), schema.SOURCE, closed=False)
    # after data: model.num_classes and input_size interpolate data's keys
    if isinstance(cfg.get("model"), DictConfig):
        schema.check_table("model", _readable(cfg.model), schema.MODEL, closed=True)
    optimizer = cfg.get("optimizer")
    if isinstance(optimizer, DictConfig):
        table = _table(optimizer, schema.OPTIMIZER)
        schema.check_table("optimizer", _readable(optimizer), table or {}, closed=False)
    for group, table in (("schedule", schema.SCHEDULE), ("module", schema.MODULE),
                         ("trainer", schema.TRAINER), ("strategy", schema.STRATEGY)):  # fmt: skip
        if isinstance(cfg.get(group), DictConfig):
            schema.check_table(group, _readable(cfg[group]), table, closed=False)
    for group in ("logger", "callbacks"):
        if isinstance(cfg.get(group), DictConfig):
            _check_collection(group, cfg[group])
    for (name, key), rule in schema.CALLBACKS.items():
        node = OmegaConf.select(cfg, f"callbacks.{name}", default=None)
        if isinstance(node, DictConfig) and key in node:
            rule.check(f"callbacks.{name}.{key}", value(node, key))


def check_top_level(cfg: DictConfig) -> None:
    """Top-level keys: known ones checked, unknown ones (``+lr=5``) refused."""
    for key in cfg:
        if key in schema.GROUPS:
            continue
        if key in schema.TOP:
            schema.TOP[key].check(key, value(cfg, key))
            continue
        near = [g for g in schema.GROUPS if isinstance(cfg.get(g), DictConfig) and key in cfg[g]]
        hint = f"Did you mean {near[0]}.{key}=...? " if near else ""
        raise ConfigError(
            f"{key} is not a key alexlab reads (a `+{key}=...` override adds a key nothing uses). "
            f"{hint}Top-level keys: {', '.join(sorted(schema.TOP))}; groups: "
            f"{', '.join(g for g in schema.GROUPS if g != 'hydra')}."
        )


def validate_config(cfg: DictConfig) -> None:
    """Every value and every cross-key rule of a composed train (or eval) config."""
    check_top_level(cfg)
    check_groups(cfg)
    check_cross_keys(cfg)
    check_hardware(cfg, cpus=len(os.sched_getaffinity(0)), gpus=gpu_count)
    check_monitor(cfg)  # last: it imports the metric names (Lightning)


@cache
def gpu_count() -> int:
    """Visible CUDA GPUs; imports torch, so called only when a rule needs to know."""
    import torch

    return torch.cuda.device_count()


class ValidateOnStart(Callback):
    """Hydra callback: validate before Hydra makes the run directory (``on_run_start``), before
    a sweep starts (``on_multirun_start``: the values not swept) and before each of its jobs
    (the job's folder, holding only Hydra's files at that point, is removed again)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _validate_or_exit(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _validate_or_exit(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:  # a single run was validated in on_run_start
            _validate_or_exit(config, job_dir=Path(config.hydra.runtime.output_dir))


def _validate_or_exit(config: DictConfig, job_dir: Path | None = None) -> None:
    try:
        validate_config(config)
    except ConfigError as e:
        if job_dir is not None:
            _remove_if_only_hydra_files(job_dir)
        print(f"alexlab: config error: {e}", file=sys.stderr)
        sys.exit(2)


def _remove_if_only_hydra_files(job_dir: Path) -> None:
    """A job folder that holds nothing but Hydra's ``.hydra/`` and log goes; so does its sweep
    folder when nothing else is left in it but Hydra's ``multirun.yaml``."""
    import shutil

    if not job_dir.is_dir():
        return
    if {p.name for p in job_dir.iterdir()} <= {".hydra"} | {p.name for p in job_dir.glob("*.log")}:
        shutil.rmtree(job_dir, ignore_errors=True)
        sweep_dir = job_dir.parent
        if {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}:
            shutil.rmtree(sweep_dir, ignore_errors=True)
