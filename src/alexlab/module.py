"""``ClassificationModule``: the training logic around an injected network (its metric names:
``alexlab.metric_names``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from alexlab.loggers import logger_step
from alexlab.metric_names import metric_name
from alexlab.optim.param_groups import param_groups
from alexlab.optim.schedules import report_epoch_metrics, steps_per_epoch


class ClassificationModule(L.LightningModule):
    """Cross-entropy training with top-1/top-5 accuracy. ``optimizer`` and ``schedule`` are
    Hydra partials (None: evaluate only, a constant lr); the other settings are documented in
    ``alexlab.config.schema.Module``."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., Optimizer] | None = None,
        schedule: Callable[..., LRScheduler] | None = None,
        *,
        num_classes: int,
        label_smoothing: float = 0.0,
        exclude_bias_and_norm: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "schedule"])
        self.net = net
        self.optimizer_factory = optimizer
        self.schedule_factory = schedule
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.top5 = min(5, num_classes)
        for stage in ("val", "test"):
            metrics = MetricCollection(
                {
                    "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                    "acc5": MulticlassAccuracy(num_classes, top_k=self.top5, average="micro"),
                },
                prefix=f"{stage}/",
            )
            setattr(self, f"{stage}_metrics", metrics)
            # the loss as a metric object too: reduced over ranks, readable at epoch end
            setattr(self, f"{stage}_loss", MeanMetric())
        # train: running (loss x n, top-1 hits, top-5 hits, n) on the device, reduced per epoch
        self._train_sums: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # (channels-last weights take NCHW batches as they are: torch converts inside the conv)
        return self.net(images)  # (B, 3, S, S) -> (B, num_classes)

    def _logits_and_loss(self, batch: tuple[torch.Tensor, torch.Tensor]):
        images, labels = batch  # (B, 3, S, S) float, (B,) int64
        if images.ndim == 5:  # (B, V, 3, S, S): multi-view test, softmax averaged (2012 §4.1)
            probs = self(images.flatten(0, 1)).softmax(dim=1).unflatten(0, images.shape[:2]).mean(1)
            logits = probs.clamp_min(1e-12).log()  # (B, classes); metrics only need the ranking
            return logits, nn.functional.nll_loss(logits, labels)
        logits = self(images)
        return logits, self.criterion(logits, labels)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        logits, loss = self._logits_and_loss(batch)
        labels = batch[1]
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        metrics.update(logits.detach(), labels)
        mean_loss: MeanMetric = getattr(self, f"{stage}_loss")
        mean_loss.update(loss.detach(), weight=labels.numel())
        self.log(metric_name(stage, "loss"), mean_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        # Per step: one running sum on the device, no host sync. Each self.log (and a torchmetrics
        # update) costs Lightning more than a small model's step, so step values are logged only
        # on the logger's steps, and never with prog_bar=True: Lightning converts every prog_bar
        # value to a number after every batch (.item(), a GPU sync) until the epoch ends.
        # LoggedStepsProgressBar shows train/loss instead, read on the logger's steps.
        logits, loss = self._logits_and_loss(batch)
        labels = batch[1]
        with torch.no_grad():  # no host value is copied to the device here (that would sync)
            hit = logits.topk(self.top5, dim=1).indices == labels[:, None]  # (B, k), <= 1 per row
            n = labels.numel()
            step = torch.stack(
                [
                    loss.detach().float() * n,
                    hit[:, 0].sum().float(),
                    hit.sum().float(),
                    torch.full_like(loss, n, dtype=torch.float32),
                ]
            )
            self._train_sums = step if self._train_sums is None else self._train_sums + step
        if logger_step(self.trainer, done=False):
            self.log(metric_name("train", "loss"), loss.detach())
            self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def on_train_epoch_end(self) -> None:
        sums, self._train_sums = self._train_sums, None
        if sums is None:  # no step this epoch (a resume at its very end), on every rank alike
            return
        # summed over ranks: every rank takes part, so every rank logs the global values
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        loss_sum, top1, top5, n = sums.tolist()
        epoch = {f"{metric_name('train', 'loss')}_epoch": loss_sum / n}
        epoch |= {metric_name("train", "acc1"): top1 / n, metric_name("train", "acc5"): top5 / n}
        self.log_dict(epoch, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        # Plateau schedules see this epoch's val metrics here, before ModelCheckpoint saves in
        # on_validation_end, so a checkpoint always holds the schedule state that matches it.
        fitting = self.trainer.state.fn == TrainerFn.FITTING  # not the final validate()
        if self.trainer.sanity_checking or not fitting:
            return
        epoch_metrics = {metric_name("val", "loss"): self.val_loss.compute()}
        epoch_metrics.update(self.val_metrics.compute())
        for config in self.trainer.lr_scheduler_configs:
            report_epoch_metrics(config.scheduler, epoch_metrics)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise RuntimeError("ClassificationModule was built without an optimizer: eval only")
        groups = param_groups(self.net, exclude_bias_and_norm=self.hparams.exclude_bias_and_norm)
        optimizer = self.optimizer_factory(params=groups)
        if self.schedule_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)  # sets num_training_batches
        scheduler = self.schedule_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch(self.trainer)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
