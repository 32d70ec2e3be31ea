"""Resume in place.

A run lives in one directory, ``runs/<run id>/``, for its whole life, however many jobs it
takes. The id is ``run_name`` when given; under SLURM the job id (array jobs: job and task
id), which a requeued job keeps; elsewhere the start time (``alexlab.config.run_id``). In a sweep, each job's directory is
``<sweep dir>/<job number>``. ``resume=auto`` (the default) continues from the directory's
``checkpoints/last.ckpt`` when there is one; ``resume=never`` refuses to start on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from alexlab.checkpoint import IGNORED_WHEN_READ, Checkpoint, open_checkpoint
from alexlab.config import ConfigError

RESUME_MODES = ("auto", "never")
# Lightning-compatible checkpoint writes leave `.<name>.tmp-<pid>` beside the target until the
# rename (alexlab.callbacks.preemption.AtomicCheckpointIO); a killed write leaves one behind.
TEMP_GLOB = ".*.tmp-*"


def clean_temp_files(checkpoints: Path) -> list[Path]:
    """Remove what an interrupted checkpoint write left beside its target."""
    removed = sorted(checkpoints.glob(TEMP_GLOB)) if checkpoints.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def resume_checkpoint(cfg: DictConfig) -> Checkpoint | None:
    """The checkpoint this run starts from: ``ckpt_path`` (a new run from any checkpoint), or
    the run directory's own ``last.ckpt`` (resume in place), or None."""
    mode = cfg.get("resume", "auto")
    if mode not in RESUME_MODES:
        raise ConfigError(f"resume={mode} is unknown; valid: {', '.join(RESUME_MODES)}.")
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    clean_temp_files(checkpoints)
    last = checkpoints / "last.ckpt"
    used = checkpoints.is_dir() and any(checkpoints.glob("*.ckpt"))
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        raise ConfigError(
            "ckpt_path=last is gone: a run resumes by itself. Run the same command again with "
            "the same run_name=NAME (resume=auto continues from runs/NAME/checkpoints/last.ckpt)."
        )
    if ckpt_path:
        if used:
            raise ConfigError(
                f"ckpt_path={ckpt_path} starts a new run, but {checkpoints.parent} already holds "
                f"checkpoints. Give the new run another run_name, or drop ckpt_path to resume "
                f"this run where it stopped."
            )
        return open_checkpoint(ckpt_path)
    if not used:
        return None
    if mode == "never":
        raise ConfigError(
            f"resume=never, but {checkpoints} already holds checkpoints of an earlier run. "
            f"Pick another run_name, or use resume=auto to continue that run."
        )
    if not last.is_file():
        raise ConfigError(
            f"{checkpoints} holds checkpoints but no last.ckpt to resume from. Pick another "
            f"run_name, or pass ckpt_path=<one of them> with a new run_name."
        )
    return open_checkpoint(last, key="resume")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def check_same_run(ckpt: Checkpoint, cfg: DictConfig) -> None:
    """A run resumed in place keeps its network and optimizer: refuse overrides that change
    them (they would fail deep inside Lightning, or silently train something else)."""
    stored = ckpt.run_config
    model = _plain(cfg.model)
    # (the class count is checked once the data is counted: Checkpoint.check_classes)
    ignored = {*IGNORED_WHEN_READ, "channels_last", "_target_", "num_classes"}
    changed = [
        f"model.{key}: {stored['model'].get(key)!r} -> {model.get(key)!r}"
        for key in sorted(set(model) | set(stored["model"]))
        if key not in ignored and stored["model"].get(key) != model.get(key)
    ]
    stored_opt = (stored.get("optimizer") or {}).get("_target_")
    if stored_opt != cfg.optimizer.get("_target_"):
        changed.append(f"optimizer: {stored_opt} -> {cfg.optimizer.get('_target_')}")
    if changed:
        raise ConfigError(
            f"{ckpt.key}={ckpt.path} was trained with another network or optimizer "
            f"({'; '.join(changed)}). A checkpoint's network and optimizer state resume together: "
            f"use the settings it was trained with (its run's config.yaml)."
        )
