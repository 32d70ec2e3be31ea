"""Stop at the first NaN/Inf loss, before it reaches the weights."""

from __future__ import annotations

import lightning as L
import torch

from alexlab.callbacks.checkpoint_paths import best_and_last


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or infinite; the message names the step and lr."""


class NonFiniteLossGuard(L.Callback):
    """Checks the loss before ``backward``: the weights never see a non-finite gradient, and the
    checkpoints already written (``last.ckpt``, best) stay the last good state."""

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if torch.isfinite(loss).all():
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        ckpt = best_and_last(trainer)[1] or "none written yet"
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) at step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}, lr {lr:.4g}). Training stopped; last good "
            f"checkpoint: {ckpt}. Lower optimizer.lr, add warmup (schedule.warmup_epochs) or "
            f"gradient clipping (trainer.gradient_clip_val), then resume with ckpt_path=..."
        )
