"""Print per-layer output shape, parameters and MACs when fitting starts."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table

from alexlab.models.summary import LayerRow, layer_summary


class LayerSummary(L.Callback):
    """Replaces Lightning's model summary with one that also gives forward MACs (torch's
    ``FlopCounterMode``), and sets ``pl_module.flops_per_batch`` for ``TrainThroughput``: 3 x 2 x
    MACs x batch (a forward FLOP is 2 x MACs; the backward costs about twice the forward)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        size = getattr(net, "input_size", 224)
        rows, macs = layer_summary(net, size)
        batch = getattr(trainer.datamodule, "batch_size", None)
        if batch:
            pl_module.flops_per_batch = 3 * 2 * macs * batch
        self._print(rows, macs, f"{type(net).__name__} at {size}x{size}")

    @rank_zero_only
    def _print(self, rows: list[LayerRow], macs: int, title: str) -> None:
        table = Table(title=title)
        for col in ("layer", "type", "output", "params", "MACs"):
            table.add_column(col, justify="left" if col in ("layer", "type") else "right")
        for r in rows:
            params = f"{r.params:,}" if r.params else ""
            layer_macs = f"{r.macs / 1e6:,.1f}M" if r.macs else ""
            table.add_row(r.name, r.kind, "x".join(map(str, r.out_shape[1:])), params, layer_macs)
        params = sum(r.params for r in rows)
        table.add_row("total", "", "", f"{params:,}", f"{macs / 1e9:.3f}G", style="bold")
        Console().print(table)
