"""What a run prints for people: the closing results table."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table


@rank_zero_only
def print_metrics(summary: dict[str, Any], title: str = "alexlab results") -> None:
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
