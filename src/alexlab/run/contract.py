"""The resume contract: what a run resumed from a checkpoint keeps, and what a new command may
change. Every config key is one of three kinds, declared once in ``CONTRACT`` as rows of (kind,
keys, what happens), the first match winning and a name covering its sub-keys: identity (a change
is refused before any work), plan (used from the resumed step on, the schedule re-planned by
``alexlab.run.state.RunState``) and free. docs/runs.md, "The resume contract", shows the table."""

from __future__ import annotations

from typing import Any

from alexlab.config import ConfigError

IDENTITY, PLAN, FREE = "identity", "plan", "free"

CONTRACT: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        FREE,
        (
            "model.weights",
            "model.compile",
            "model.channels_last",
            "optimizer.foreach",
            "optimizer.fused",
        ),
        "how the same network is built or stepped: used as given",
    ),
    (
        IDENTITY,
        (
            "model",
            "module.num_classes",
            "module.exclude_bias_and_norm",
            "data._target_",
            "data.root",
            "data.source",
            "data.num_classes",
            "data.image_size",
            "data.resize_size",
            "data.mean",
            "data.std",
            "optimizer._target_",
            "monitor",
            "monitor_mode",
        ),
        "refused: the checkpoint's network, data and optimizer state belong to these values",
    ),
    (
        PLAN,
        (
            "trainer.max_epochs",
            "trainer.max_steps",
            "trainer.limit_train_batches",
            "trainer.gradient_clip_val",
            "trainer.precision",
            "optimizer",
            "schedule",
            "data.batch_size",
            "data.global_batch_size",
            "data.crop",
            "data.scale",
            "data.ratio",
            "data.hflip_prob",
            "data.lighting_std",
            "module",
            "scale_lr",
            "lr_reference_batch",
            "seed",
            "data.seed",
        ),
        "used from the resumed step on; the lr schedule is re-planned over the remaining steps",
    ),
    (
        FREE,
        (
            "data",
            "trainer",
            "strategy",
            "logger",
            "callbacks",
            "paths",
            "run_name",
            "resume",
            "ckpt_path",
            "tags",
            "test",
            "float32_matmul_precision",
            "debug",
            "derived",
        ),
        "used as given: where and how the run runs, and what it logs",
    ),
)


def kind_of(key: str) -> str | None:
    """The contract's kind of a dotted config key (None: a key the contract does not know)."""
    for kind, names, _ in CONTRACT:
        if any(key == p or key.startswith(f"{p}.") for p in names):
            return kind
    return None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are values."""
    if not isinstance(node, dict) or not node:
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def changes(stored: dict, current: dict, kind: str) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint's value, this command's value)`` of each key of ``kind`` that differs.
    Identity: only keys both hold (a key the checkpoint lacks, from an older alexlab, is no
    change); plan: also a key one side lacks (another schedule's settings), shown as None."""
    old, new = flatten(stored), flatten(current)
    keys = set(old) & set(new) if kind == IDENTITY else set(old) | set(new)
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(keys)
        if kind_of(key) == kind and old.get(key) != new.get(key)
    ]


def show(found: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key} {old!r} -> {new!r}" for key, old, new in found)


def check_identity(stored: dict, current: dict, *, source: str, run_dir: str) -> None:
    """Refuse a resume whose command changes what the checkpoint is."""
    # null: derived at start (data.num_classes counted from the folders), checked there
    found = [c for c in changes(stored, current, IDENTITY) if c[2] is not None]
    if found:
        raise ConfigError(
            f"{source} was trained with other identity settings ({show(found)}). A checkpoint's "
            f"network, optimizer state and best-checkpoint record belong to these: to continue "
            f"it, drop these overrides (its values are in {run_dir}/config.yaml); to train with "
            f"them, start a new run under another run_name, without ckpt_path."
        )
