"""Counts host reads of device values (``aten._local_scalar_dense``: what ``.item()``,
``bool(t)``, ``float(t)`` and ``.tolist()`` dispatch to; each one waits for a GPU) per training
batch, through a real run.

``COUNTER`` is entered around ``train(cfg)``; ``StepSyncs`` (a callback that configs name as
``sync_count.StepSyncs``) reads it at every batch start, so each batch is charged with what ran
from its start to the next batch's start: its step, the callbacks, the loggers, the progress
bar and the next batch's loading.
"""

from __future__ import annotations

import lightning as L

from benchmarks.gpu_parts import HostReads

COUNTER = HostReads()  # make gpu-check's counter (benchmarks/gpu_parts.py)
WINDOWS: list[dict] = []  # one per batch whose window closed inside its epoch


class StepSyncs(L.Callback):
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.open = None  # the last batch's window holds validation: not charged to a step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.open is not None:
            self.open["syncs"] = COUNTER.count - self.open["syncs"]
            WINDOWS.append(self.open)
        # the optimizer step this micro-batch belongs to (1-based: global_step after it)
        self.open = {"step": trainer.global_step + 1, "syncs": COUNTER.count}
