"""Everything a run prints for people, and what it keeps from printing (Lightning's start-up
chatter and one torch deprecation, dropped by exact message: every other record still prints).

The CLI imports this module before Hydra composes the config, so torch, Lightning and rich are
imported inside the functions that use them: a bad value is still refused before they load."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# Lightning's info lines with no setting to turn them off (lightning 2.6: trainer/setup.py,
# logger_connector.py, callback_connector.py, trainer.py)
CHATTER = (
    "GPU available: ",
    "TPU available: ",
    "💡 Tip: ",
    "Loading `train_dataloader` to estimate number of stepping batches",
)


class DropLightningChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(CHATTER)


def quiet_known_warnings() -> None:
    """Lightning 2.6's pytree helper calls ``isinstance(x, LeafSpec)``, which torch 2.14
    deprecates: one warning per run that a user can do nothing about (this message only)."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )


def start_line(cfg: DictConfig, out: Path, datamodule: Any, trainer: Any, derived: dict) -> str:
    """``[alexlab] run dir ... | data ... | loader ... | devices ... | batch ... | lr ...``.

    Refuses (``ConfigError``) a run whose epochs would hold no training step: the data is
    counted here, the first moment its size is known."""
    from alexlab.config.rules import check_steps

    device = trainer.strategy.root_device.type
    about = datamodule.describe(gpu=device == "cuda")
    images = about["images"]
    if "steps_per_epoch" not in about:  # synthetic data sets its steps directly
        check_steps(
            cfg,
            train_images=images["train"],
            world_size=trainer.world_size,
            accumulation=derived["accumulation"],
        )
    lr = f"lr {derived['lr']:g}" + (
        f" (scaled from {cfg.optimizer.lr:g})" if cfg.get("scale_lr") else ""
    )
    return (
        f"[alexlab] run dir {out} | data {cfg.data.get('root') or 'in memory'}: "
        + ", ".join(f"{n} {split}" for split, n in images.items())
        + f" images | loader {about['loader']} | {trainer.world_size} {device.upper()} device(s), "
        f"precision {trainer.precision} | global batch {derived['global_batch_size']} = "
        f"{cfg.data.batch_size} per device x {trainer.world_size} x {derived['accumulation']} "
        f"accumulation | {lr}"
    )


def print_metrics(summary: dict[str, Any], title: str = "alexlab results") -> None:
    """The closing results table (``metrics.json``'s figures), on global rank 0 only."""
    from lightning.pytorch.utilities import rank_zero_only
    from rich.console import Console
    from rich.table import Table

    if rank_zero_only.rank != 0:
        return
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    for key in (
        "epochs",
        "global_step",
        "global_batch_size",
        "accumulation",
        "lr",
        "fit_seconds",
        "best_ckpt",
    ):
        if summary.get(key) is not None:
            table.add_row(key, str(summary[key]))
    table.add_row("output_dir", summary["output_dir"])
    Console().print(table)
