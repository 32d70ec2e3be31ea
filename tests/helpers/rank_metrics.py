"""A test-only callback: each rank writes the val metrics it logged (for the DDP test)."""

import json
from pathlib import Path

import lightning as L


class RankMetricsDump(L.Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(values))
