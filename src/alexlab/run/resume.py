"""Which checkpoint a run starts from, and whether this command may start from it: ``resume=auto``
takes the run directory's newest loadable checkpoint (a damaged one is set aside as
``*.damaged``); ``ckpt_path`` elsewhere starts a new run (docs/runs.md, "Checkpoints that
survive")."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from alexlab.config import ConfigError
from alexlab.run import contract
from alexlab.run.checkpoint import Checkpoint, open_checkpoint
from alexlab.run.files import candidates, clean_temp_files


def resume_checkpoint(cfg: DictConfig) -> Checkpoint | None:
    """The checkpoint this run starts from, or None for a fresh start."""
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    clean_temp_files(checkpoints)
    files = candidates(checkpoints)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        raise ConfigError(
            "ckpt_path=last is gone: a run resumes by itself. Run the same command again with "
            "the same run_name=NAME (resume=auto continues from runs/NAME/checkpoints/last.ckpt)."
        )
    if ckpt_path:
        path = Path(ckpt_path).expanduser()
        if path.resolve().parent == checkpoints.resolve():  # one of this run's own
            return dataclasses.replace(open_checkpoint(path), in_place=True)
        if files:
            raise ConfigError(
                f"ckpt_path={ckpt_path} starts a new run, but {checkpoints.parent} already holds "
                f"checkpoints. Give the new run another run_name, drop ckpt_path to resume this "
                f"run where it stopped, or pass one of its own files (ckpt_path={files[0]})."
            )
        return open_checkpoint(path)
    if not files:
        return None
    if cfg.get("resume") == "never":
        raise ConfigError(
            f"resume=never, but {checkpoints} already holds checkpoints of an earlier run. "
            f"Pick another run_name, or use resume=auto to continue that run."
        )
    damaged: list[str] = []
    for path in files:
        try:
            ckpt = open_checkpoint(path, key="resume")
        except ConfigError as e:
            damaged.append(f"{path.name}: {str(e).split(' (')[-1].split(')')[0]}")
            continue
        if not damaged:
            return dataclasses.replace(ckpt, in_place=True)
        for name in damaged:  # set aside, so the next save cannot keep it as the previous last
            bad = checkpoints / name.split(":")[0]
            bad.rename(bad.with_name(bad.name + ".damaged"))
        note = (
            f"{'; '.join(damaged)} did not load (renamed to *.damaged); resumed from "
            f"{path.name} instead (step {ckpt.global_step})"
        )
        return dataclasses.replace(ckpt, in_place=True, note=note)
    raise ConfigError(
        f"none of the checkpoints in {checkpoints} loads ({'; '.join(damaged)}). Move them out "
        f"of the way to start this run again from scratch, or start a new run under another "
        f"run_name."
    )


def check_resume(ckpt: Checkpoint, cfg: DictConfig) -> list[tuple[str, Any, Any]]:
    """Refuse an identity change or a run with nothing left to train (one paragraph each);
    return the plan changes (key, checkpoint's value, this command's value)."""
    stored, current = ckpt.run_config, OmegaConf.to_container(cfg, resolve=True)
    source = f"{ckpt.key}={ckpt.path}" if ckpt.key == "ckpt_path" else f"the run's {ckpt.path}"
    contract.check_identity(stored, current, source=source, run_dir=str(ckpt.path.parent.parent))
    done, asked = ckpt.epochs_trained, cfg.trainer.max_epochs
    max_steps = cfg.trainer.get("max_steps", -1) or -1
    finished = done is not None and asked is not None and done >= asked
    if max_steps > 0:
        finished = ckpt.global_step >= max_steps
    # the same command again on a finished run of its own (a relaunched sweep) re-evaluates it;
    # anything else that has nothing to train is a mistake
    same = ckpt.in_place and done == asked and max_steps <= 0
    if finished and not same:
        limit = f"trainer.max_epochs={asked}"
        if max_steps > 0:
            limit += f", trainer.max_steps={max_steps}; it ran {ckpt.global_step} steps"
        raise ConfigError(
            f"{source} trained {done} epochs, asked for {asked} ({limit}): nothing left to "
            f"train. Raise trainer.max_epochs to train it further, or evaluate it: "
            f"python eval.py ckpt_path={ckpt.path}."
        )
    return contract.changes(stored, current, contract.PLAN)
