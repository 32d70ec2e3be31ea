"""Test-only callbacks: per-rank train/val metrics (DDP test), a simulated kill (resume test),
the lr of each step (schedule re-planning test)."""

import json
from pathlib import Path

import lightning as L


class RankMetricsDump(L.Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The last epoch's train and val metrics as this rank logged them."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        values = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("val/", "train/"))
        }
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(values))


class DieAtStep(L.Callback):
    """Stands in for a kill: raises at the start of optimizer step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated kill at step {self.step}")


class RecordLr(L.Callback):
    """The lr each optimizer step of this fit trains at, saved to ``path`` at the end."""

    def __init__(self, path: str) -> None:
        self.path, self.lrs = Path(path), []

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        torch.save(self.lrs, self.path)


class RngOrderProbe(L.Callback):
    """Records, at each hook of a resumed fit, whether the global RNG already holds the state
    the checkpoint saved for rank 0, and where the module sits; saved to ``path`` at the end."""

    def __init__(self, path: str) -> None:
        self.path, self.saved, self.events = Path(path), None, []

    def _record(self, hook: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        restored = self.saved is not None and torch.equal(torch.get_rng_state(), self.saved)
        on_device = pl_module.device == trainer.strategy.root_device
        self.events.append([hook, restored, on_device])

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.saved = checkpoint["alexlab"]["rng"]["per_rank"][0]["torch"]
        self._record("on_load_checkpoint", trainer, pl_module)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._record("on_fit_start", trainer, pl_module)

    def on_train_start(self, trainer, pl_module) -> None:
        self._record("on_train_start", trainer, pl_module)
        self.path.write_text(json.dumps(self.events))


class ValidationPasses(L.Callback):
    """Appends ``[trainer.state.fn, global_step, val/acc1]`` for each validation pass (sanity
    checks aside) to ``path`` (a JSON list): what ran, and on which weights."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        passes = json.loads(self.path.read_text()) if self.path.exists() else []
        acc = float(trainer.callback_metrics["val/acc1"])
        passes.append([str(trainer.state.fn.value), trainer.global_step, acc])
        self.path.write_text(json.dumps(passes))
