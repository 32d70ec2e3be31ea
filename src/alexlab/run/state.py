"""What a checkpoint carries beside Lightning's own state, written and read in one place.

``RunState`` (added to every training run by ``alexlab.train``) stores under the checkpoint's
``"alexlab"`` key, read back through ``alexlab.run.checkpoint.Checkpoint``:

    run_config        the resolved run config (model, data, optimizer, ...) and derived values
    class_names       class index -> name, so predict labels its output from the file alone
    logger_versions   each logger's run id (W&B's above all): a resume continues the same run
    rng               each rank's global RNG state (dropout masks), gathered to one list
    epochs_done       epochs whose training batches all ran
    epoch             the epoch being trained at the save (0-based)
    steps_into_epoch  optimizer steps of that epoch done at the save

On a resume it applies this command's plan (``alexlab.run.contract``) in ``on_train_start``, once
Lightning has restored the optimizer and the step count and the module sits on its final device
(where each rank's RNG state is restored too: a CUDA state needs it): the optimizer takes this
command's hyper-parameters (Lightning restored the checkpoint's), the lr schedule is re-planned
over the steps left."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from alexlab.optim.schedules import steps_per_epoch

KEY = "alexlab"


class RunState(L.Callback):
    """Args: run_config: the resolved config of this run (plain values)."""

    def __init__(self, run_config: dict) -> None:
        self.run_config = run_config
        self.loaded: dict | None = None  # the checkpoint's state, until on_train_start
        self.fresh: list[list[dict]] = []  # this command's optimizer hyper-parameters
        self.epoch_start_step = 0
        self.epochs_done = 0

    # --- the run config reaches the loggers (W&B's config panel, hparams.yaml) ---
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self.run_config)
        # the optimizers exist (strategy.setup ran); Lightning restores their state after this
        self.fresh = [
            [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
            for opt in trainer.optimizers
        ]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            self.epochs_done = trainer.current_epoch + 1

    # --- save / load ---
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict) -> None:
        # every rank runs this hook (Lightning builds the checkpoint on all ranks, rank 0
        # writes it), so the RNG states are gathered to one list indexed by rank
        datamodule = getattr(trainer, "datamodule", None)
        checkpoint[KEY] = {
            "run_config": self.run_config,
            "class_names": list(getattr(datamodule, "class_names", None) or []),
            "logger_versions": {type(lg).__name__: str(lg.version) for lg in trainer.loggers},
            "rng": {"per_rank": gather_rng_states(pl_module)},
            "epochs_done": self.epochs_done,
            "epoch": trainer.current_epoch,
            "steps_into_epoch": trainer.global_step - self.epoch_start_step,
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict) -> None:
        # called before the module moves to its device: keep it for on_train_start
        self.loaded = checkpoint.get(KEY) or {}
        self.epochs_done = int(self.loaded.get("epochs_done", 0))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.loaded is None:
            return
        loaded, self.loaded = self.loaded, None
        restore_rng_state(loaded.get("rng") or {}, trainer.global_rank, pl_module.device)
        # Lightning resumes in the saved epoch (a save within it) or the next (at its end)
        same_epoch = loaded.get("epoch") == trainer.current_epoch
        steps_into_epoch = int(loaded.get("steps_into_epoch", 0)) if same_epoch else 0
        # this command's optimizer settings, and the schedule over the steps left
        scheduled = {id(c.scheduler.optimizer) for c in trainer.lr_scheduler_configs}
        for opt, fresh in zip(trainer.optimizers, self.fresh, strict=True):
            skip = {"lr", "initial_lr"} if id(opt) in scheduled else set()
            for group, values in zip(opt.param_groups, fresh, strict=True):
                group.update({k: v for k, v in values.items() if k not in skip})
        per_epoch = steps_per_epoch(trainer)
        step, epoch = trainer.global_step, trainer.current_epoch
        total = step + (trainer.max_epochs - epoch) * per_epoch - steps_into_epoch
        if trainer.max_steps > 0:
            total = min(total, trainer.max_steps)
        for config in trainer.lr_scheduler_configs:
            replan = getattr(config.scheduler, "replan", None)
            if replan is None:
                continue
            lr = replan(
                total_steps=total,
                steps_per_epoch=per_epoch,
                start_step=step,
                start_epoch=epoch + steps_into_epoch / per_epoch,
            )
            rank_zero_info(
                f"[alexlab] lr schedule re-planned from step {step}: {total - step} steps left "
                f"({per_epoch} per epoch), {total} in all; lr now {lr:.4g}"
            )


def gather_rng_states(pl_module: L.LightningModule) -> list[dict[str, torch.Tensor]]:
    """Each rank's CPU and (on a GPU) CUDA RNG state, one entry per rank."""
    device = pl_module.device
    cpu = torch.get_rng_state()  # (5056,) uint8
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else cpu[:0]  # this rank's
    mine = torch.cat([cpu, cuda]).to(device)
    gathered = pl_module.all_gather(mine) if pl_module.trainer.world_size > 1 else mine[None]
    # each its own storage: torch.set_rng_state reads from a storage's start, not a view's
    return [
        {"torch": row[: cpu.numel()].cpu().clone(), "cuda": row[cpu.numel() :].cpu().clone()}
        for row in gathered
    ]


def restore_rng_state(rng: dict, rank: int, device: torch.device) -> None:
    """Set this rank's RNG to its entry; ``device`` is where the module trains (final)."""
    per_rank = rng.get("per_rank") or []
    if rank >= len(per_rank):  # more ranks than when saved: they keep their seeded state
        return
    state = per_rank[rank]
    torch.set_rng_state(state["torch"].clone())  # a view would be read from its storage start
    cuda = state.get("cuda")
    if cuda is not None and cuda.numel() and device.type == "cuda":
        torch.cuda.set_rng_state(cuda.clone(), device)
