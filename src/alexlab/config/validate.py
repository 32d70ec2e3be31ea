"""``validate_config(cfg)``: each group against its schema, then the rules across keys and of
this machine; the first failure is a ``ConfigError`` naming key, value, what is allowed and the
fix. The CLI runs it from a Hydra callback (``ValidateOnStart``) before the run directory and
before torch loads; ``alexlab.train.train(cfg)`` runs it again for callers that skip the CLI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ValidationError

from alexlab.config.errors import ConfigError, exit_with
from alexlab.config.rules import check_cross_keys, check_hardware, check_monitor, show
from alexlab.config.schema import CALLBACKS, GROUPS, SCHEMAS, Closed, Top

_UNREADABLE = object()  # a value that cannot be resolved yet (${hydra:...} before the run)


def _value(node: Any, key: str) -> Any:
    try:
        item = node[key]
        return OmegaConf.to_container(item, resolve=True) if OmegaConf.is_config(item) else item
    except OmegaConfBaseException:
        return _UNREADABLE


def _readable(node: Any) -> dict[str, Any]:
    return {k: v for k in node if (v := _value(node, k)) is not _UNREADABLE}


def _allowed(prop: dict) -> str:
    """What a field's JSON schema accepts, in words: ``an integer >= 1, or null``."""
    if "anyOf" in prop:
        kinds = [p for p in prop["anyOf"] if p.get("type") != "null"]
        text = ", or ".join(_allowed(p) for p in kinds)
        return text + (", or null" if len(kinds) < len(prop["anyOf"]) else "")
    if "enum" in prop or "const" in prop:
        choices = dict.fromkeys(show(c) for c in prop.get("enum", [prop.get("const")]))
        return "one of " + ", ".join(choices)
    if prop.get("type") == "array":
        n = prop.get("minItems") if prop.get("minItems") == prop.get("maxItems") else None
        return f"a list of {n or 'any number of'} items, each {_allowed(prop.get('items', {}))}"
    words = {
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "string": "a string",
    }.get(prop.get("type", ""), "a value")
    signs = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    bounds = [f"{sign} {show(prop[key])}" for key, sign in signs.items() if key in prop]
    return f"{words} {' and '.join(bounds)}".strip()


def _message(prefix: str, schema: type[Closed], values: dict, error: dict) -> str:
    field = str(error["loc"][0])
    key = f"{prefix}.{field}" if prefix else field
    if error["type"] == "extra_forbidden":
        return (
            f"{key} is not a key of this {prefix or 'config'} option; valid keys: "
            f"{', '.join(sorted(schema.model_fields))}. Remove it (or fix its spelling)."
        )
    prop = schema.model_json_schema()["properties"][field]
    example = prop.get("examples", [prop.get("default")])[0]
    return (
        f"{key}={show(values.get(field))} is not allowed: {key} takes {_allowed(prop)}"
        f"{f' ({why} need it)' if (why := prop.get('why')) else ''}. "
        f"Set e.g. {key}={show(example)}."
    )


def check(prefix: str, values: dict, schema: type[Closed]) -> dict:
    """``values`` without ``_target_``-like keys, checked against ``schema``."""
    values = {k: v for k, v in values.items() if not k.startswith("_")}
    try:
        schema.model_validate(values)
    except ValidationError as e:
        raise ConfigError(_message(prefix, schema, values, e.errors()[0])) from None
    return values


def validate_section(
    group: str, values: dict, *, only: Iterable[str] | None = None, prefix: str | None = None
) -> dict:
    """One group's settings (e.g. those a checkpoint stored) against the group's schema, picked
    by ``values["_target_"]`` (else the group's first). ``only``: check just these keys, and
    let others be; otherwise an unknown key is refused. Returns the checked values."""
    tables = SCHEMAS[group]
    schema = tables.get(str(values.get("_target_")), next(iter(tables.values())))
    if only is not None:
        values = {k: values[k] for k in only if k in values}
    return check(prefix or group, values, schema)


def _check_collection(group: str, node: Any) -> None:
    """logger / callbacks: a mapping of name -> {_target_: ...} (or null to drop one)."""
    for name in node:
        item = _value(node, name)
        if item is None or item is _UNREADABLE:
            continue
        if not isinstance(item, dict) or "_target_" not in item:
            raise ConfigError(
                f"{group}.{name}={show(item)} is not a {group[:-1]} (it has no _target_). "
                f"Remove it with ~{group}.{name}, or pick a group option: {group}=<option>."
            )
        if group == "callbacks" and name in CALLBACKS:
            check(f"callbacks.{name}", _readable(node[name]), CALLBACKS[name])


def check_groups(cfg: DictConfig) -> None:
    """Each group against the schema of its ``_target_`` (a user's own class: its constructor
    checks its arguments), in ``SCHEMAS``' order."""
    for group in SCHEMAS:
        node = OmegaConf.select(cfg, group, throw_on_resolution_failure=False)
        if not isinstance(node, DictConfig):
            continue
        values = _readable(node)
        if group == "data":
            values.pop("source", None)  # the next group
        schema = SCHEMAS[group].get(str(values.get("_target_")))
        if schema is not None:
            check(group, values, schema)
    for group in ("logger", "callbacks"):
        if isinstance(cfg.get(group), DictConfig):
            _check_collection(group, cfg[group])


def check_top_level(cfg: DictConfig) -> None:
    """Top-level keys: known ones checked, unknown ones (``+lr=5``) refused."""
    for key in cfg:
        if key not in GROUPS and key not in Top.model_fields:
            near = [g for g in GROUPS if isinstance(cfg.get(g), DictConfig) and key in cfg[g]]
            hint = f"Did you mean {near[0]}.{key}=...? " if near else ""
            raise ConfigError(
                f"{key} is not a key alexlab reads (a `+{key}=...` override adds a key nothing "
                f"uses). {hint}Top-level keys: {', '.join(sorted(Top.model_fields))}; groups: "
                f"{', '.join(g for g in GROUPS if g != 'hydra')}."
            )
    check("", {k: v for k, v in _readable(cfg).items() if k not in GROUPS}, Top)


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

    on_multirun_start = on_run_start

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:  # a single run was validated in on_run_start
            _validate_or_exit(config, job_dir=Path(config.hydra.runtime.output_dir))


def _validate_or_exit(config: DictConfig, job_dir: Path | None = None) -> None:
    """``validate_config``, or the error printed and exit 2. A refused sweep job's folder goes
    when it holds nothing but Hydra's ``.hydra/`` and log; so does its sweep folder when nothing
    but Hydra's ``multirun.yaml`` is left in it."""
    try:
        validate_config(config)
    except ConfigError as e:
        from alexlab.run.rundir import only_hydra_files  # imports this package: not at the top

        if job_dir is not None and job_dir.is_dir() and only_hydra_files(job_dir):
            shutil.rmtree(job_dir, ignore_errors=True)
            if {p.name for p in job_dir.parent.iterdir()} <= {"multirun.yaml"}:
                shutil.rmtree(job_dir.parent, ignore_errors=True)
        exit_with(e)
