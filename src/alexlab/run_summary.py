"""The start line of a training run: what a user needs to know it is the run they meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from alexlab.config.rules import check_steps


def start_line(cfg: DictConfig, out: Path, datamodule: Any, trainer: Any, derived: dict) -> str:
    """``[alexlab] run dir ... | data ... | loader ... | devices ... | batch ... | lr ...``.

    Refuses (``ConfigError``) a run whose epochs would hold no training step: the data is
    counted here, the first moment its size is known."""
    gpu = trainer.strategy.root_device.type == "cuda"
    about = datamodule.describe(gpu=gpu)
    images = about["images"]
    if "steps_per_epoch" not in about:  # synthetic data sets its steps directly
        check_steps(
            cfg,
            train_images=images["train"],
            world_size=trainer.world_size,
            accumulation=derived["accumulation"],
        )
    device = trainer.strategy.root_device.type.upper()
    precision = trainer.precision
    lr = f"lr {derived['lr']:g}" + (
        f" (scaled from {cfg.optimizer.lr:g})" if cfg.get("scale_lr") else ""
    )
    return (
        f"[alexlab] run dir {out} | data {cfg.data.get('root') or 'in memory'}: "
        + ", ".join(f"{n} {split}" for split, n in images.items())
        + f" images | loader {about['loader']} | {trainer.world_size} {device} device(s), "
        f"precision {precision} | global batch {derived['global_batch_size']} = "
        f"{cfg.data.batch_size} per device x {trainer.world_size} x {derived['accumulation']} "
        f"accumulation | {lr}"
    )
