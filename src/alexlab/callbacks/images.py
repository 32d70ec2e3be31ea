"""Pictures of a run: conv1's filters each epoch (Krizhevsky et al. 2012, Figure 3; PNG in
``<run>/filters/`` whatever the logger) and a few validation images with predicted and true
labels, both sent to W&B and TensorBoard when those loggers are active."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torchvision.utils import make_grid, save_image


class RunImages(L.Callback):
    """Settings: ``callbacks.run_images.*`` (``alexlab.config.schema.RunImages``)."""

    def __init__(self, every_n_epochs: int = 1, num_val_images: int = 8) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_val_images = num_val_images

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING  # not the final validate()
        if trainer.sanity_checking or not fitting or trainer.current_epoch % self.every_n_epochs:
            return
        conv = next(m for m in pl_module.net.modules() if isinstance(m, nn.Conv2d))
        w = conv.weight.detach().float().cpu()  # (out, 3, k, k)
        w = torch.nn.functional.interpolate(w, scale_factor=4, mode="nearest")
        # (3, H, W) in [0, 1], each filter scaled to its own range
        grid = make_grid(w, nrow=16, padding=2, pad_value=1.0, normalize=True, scale_each=True)
        out = Path(trainer.default_root_dir) / "filters"
        out.mkdir(parents=True, exist_ok=True)
        save_image(grid, out / f"conv1_epoch{trainer.current_epoch:03d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="conv1_filters", images=[grid], step=trainer.global_step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("conv1_filters", grid, trainer.global_step)

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger | TensorBoardLogger)]
        if batch_idx != 0 or trainer.sanity_checking or not loggers or not self.num_val_images:
            return
        images, labels = (t[: self.num_val_images] for t in batch)
        with torch.no_grad():
            # the network's Python forward, never its compiled call (model.compile=true): batch 8
            # would recompile the training graph
            preds = pl_module.net.forward(images).argmax(dim=1)
        names = getattr(trainer.datamodule, "classes", None) or []
        name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
        # each image rescaled to [0, 1] for viewing (make_grid of one image: that image)
        shown = [make_grid(img.detach().float().cpu(), normalize=True) for img in images]
        captions = [
            f"pred {name(int(p))} / true {name(int(t))}" for p, t in zip(preds, labels, strict=True)
        ]
        step = trainer.global_step
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val_predictions", images=shown, caption=captions, step=step)
            else:
                logger.experiment.add_images("val_predictions", torch.stack(shown), step)
