"""Training task: ``train(cfg) -> metrics`` (callable from tests without Hydra) and ``main``,
what the CLI (``alexlab.cli``) runs on the composed config."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from alexlab.config import build, report_config_errors, validate_config
from alexlab.console import print_metrics, start_line
from alexlab.gpu import (
    PerProcessSettings,
    set_matmul_precision,
    sync_then_compile,
    warn_if_gpu_unused,
)
from alexlab.loggers import prepare_loggers
from alexlab.optim.batch_size import accumulation_steps, scaled_lr
from alexlab.run.checkpoint import Checkpoint, open_checkpoint
from alexlab.run.contract import show
from alexlab.run.files import AtomicCheckpointIO, best_and_last
from alexlab.run.identity import first_process
from alexlab.run.interrupt import SaveOnInterrupt
from alexlab.run.lock import RunLock
from alexlab.run.resume import check_resume, resume_checkpoint
from alexlab.run.rundir import FailedStart, check_writable
from alexlab.run.state import RunState


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """``callbacks: {name: {_target_: ...}}`` -> list of objects (an empty group -> [])."""
    return [instantiate(c) for c in (group or {}).values() if c is not None]


def derive_batch_and_lr(cfg: DictConfig, *, world_size: int) -> dict[str, Any]:
    accumulation = accumulation_steps(
        global_batch_size=cfg.data.get("global_batch_size"),
        batch_size=cfg.data.batch_size,
        world_size=world_size,
    )
    global_batch = cfg.data.batch_size * world_size * accumulation
    lr = cfg.optimizer.lr
    if cfg.get("scale_lr"):
        lr = scaled_lr(
            lr, global_batch_size=global_batch, reference_batch_size=cfg.lr_reference_batch
        )
    if cfg.trainer.get("fast_dev_run"):  # a smoke run: one micro-batch per stage, at the
        accumulation, global_batch = 1, cfg.data.batch_size * world_size  # recipe's lr
    return {
        "world_size": world_size,
        "accumulation": accumulation,
        "global_batch_size": global_batch,
        "lr": lr,
    }


def _sweep_name() -> str | None:
    """The multirun folder's name when running as one job of a Hydra sweep."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def _build_trainer(cfg: DictConfig, resume: Checkpoint | None, state: RunState) -> L.Trainer:
    prepare_loggers(
        cfg, sweep_name=_sweep_name(), resume_ids=resume.logger_versions if resume else {}
    )
    settings = PerProcessSettings(
        compile=bool(cfg.model.get("compile")),
        matmul_precision=cfg.get("float32_matmul_precision"),
    )
    # checkpoint temp files beside the checkpoint, never in /tmp; under SLURM, submitit requeues
    # (alexlab.run.interrupt), so Lightning's own auto-requeue (a mid-step save) is off
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return instantiate(
        cfg.trainer,
        strategy=instantiate(cfg.strategy),  # (a sweep of re-launching DDP: config/rules.py)
        sync_batchnorm=False,  # alexlab converts BatchNorm itself, before compile (_build_module)
        callbacks=[state, *instantiate_all(cfg.get("callbacks")), settings],
        logger=instantiate_all(cfg.get("logger")) or False,
        plugins=plugins,
    )


# torch's public BatchNorm classes (a Lazy* one becomes one of these at its first forward)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _build_module(cfg: DictConfig, derived: dict, trainer: L.Trainer) -> L.LightningModule:
    net = build(cfg.model, compile=False) if cfg.model.get("compile") else build(cfg.model)
    has_bn = any(isinstance(m, BATCH_NORMS) for m in net.modules())
    sync = cfg.trainer.get("sync_batchnorm")
    if sync is None and trainer.world_size > 1 and has_bn:
        sync = trainer.strategy.root_device.type == "cuda"  # torch's SyncBatchNorm is CUDA-only
        if not sync:
            rank_zero_info("[alexlab] BatchNorm stays per rank: SyncBatchNorm needs CUDA devices")
    # compiled after this conversion, in each training process (PerProcessSettings.setup)
    net = sync_then_compile(net, sync=bool(sync), compile=False)
    return instantiate(
        cfg.module,
        _recursive_=False,  # optimizer and schedule are partials built here
        _convert_="all",  # plain dicts in checkpoints: they load with weights_only=True
        net=net,
        optimizer=instantiate(cfg.optimizer, lr=derived["lr"]),
        schedule=instantiate(cfg.schedule) if cfg.get("schedule") else None,
    )


def _evaluate_best(
    trainer: L.Trainer, module: L.LightningModule, datamodule: Any, *, test: bool
) -> dict:
    """Val (and with ``test``, test where the data has a test split) metrics of the best
    checkpoint. When it holds the weights the fit ended with (saved at the last step, as in most
    runs), its val metrics are those the fit's last validation logged and the test stage takes
    the weights in memory: the checkpoint is not read back nor validated twice."""
    best, _ = best_and_last(trainer)  # None under fast_dev_run: the weights in memory
    ended_best = best is not None and (
        open_checkpoint(best, key="best checkpoint").global_step == trainer.global_step
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if not (ended_best and metrics):
        metrics = {}
        for result in trainer.validate(
            module, datamodule=datamodule, ckpt_path=best, weights_only=True
        ):
            metrics.update(result)
    if test and datamodule.has_test:
        ckpt = None if ended_best else best
        for result in trainer.test(
            module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True
        ):
            metrics.update(result)
    return metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, take the best checkpoint's metrics, write ``metrics.json`` and return its contents.

    Before any work: the config, the run directory (writable; one live run in it: ``run.lock``)
    and the checkpoint it starts from (the resume contract). A start that fails on the user's
    input removes the run directory it made."""
    validate_config(cfg)
    out = Path(cfg.paths.output_dir)
    check_writable(out)
    first = first_process()  # (the launch's other processes start while it holds the lock)
    lock = RunLock(out).acquire() if first else None  # refused: the directory is another's
    try:
        with FailedStart(out, enabled=first) as start:
            return _train(cfg, out, start)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: DictConfig, out: Path, start: FailedStart) -> dict[str, Any]:
    # 1) the checkpoint this run starts from, and what this command changes in its plan
    resume = resume_checkpoint(cfg)
    changes = check_resume(resume, cfg) if resume is not None else []
    L.seed_everything(cfg.seed, workers=True)
    out.mkdir(parents=True, exist_ok=True)

    # 2) data (checks paths and classes), trainer, derived batch sizes and lr, module
    datamodule = build(cfg.data)
    if cfg.data.get("num_classes") is None:  # data=folder: counted from the class folders
        with open_dict(cfg):
            cfg.data.num_classes = datamodule.num_classes
    if resume is not None:
        resume.check_classes(datamodule.num_classes)
    state = RunState(run_config={})  # filled once the derived values are known
    trainer = _build_trainer(cfg, resume, state)
    datamodule.trainer = trainer  # as fit attaches it: the start line's per-process loader
    warn_if_gpu_unused(trainer, str(cfg.trainer.get("accelerator")))
    if cfg.get("float32_matmul_precision"):  # before fit (Lightning checks it as it starts);
        set_matmul_precision(trainer, cfg.float32_matmul_precision)  # spawned ranks: setup
    derived = derive_batch_and_lr(cfg, world_size=trainer.world_size)
    trainer.accumulate_grad_batches = derived["accumulation"]
    state.run_config = {**OmegaConf.to_container(cfg, resolve=True), "derived": derived}
    rank_zero_info(
        start_line(cfg, out, datamodule, trainer, derived) + _resume_note(resume, changes)
    )
    if (fast := cfg.trainer.get("fast_dev_run")) and cfg.data.get("global_batch_size"):
        n = "one micro-batch" if fast is True else f"{fast} micro-batches"
        note = f"{n} of {cfg.data.batch_size} per device per stage, no accumulation"
        rank_zero_info(f"[alexlab] trainer.fast_dev_run: {note} (global batch not filled)")
    module = _build_module(cfg, derived, trainer)
    _write(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    # 3) fit, then the best checkpoint's metrics
    start.done()
    fit_start = time.perf_counter()
    ckpt_path = str(resume.path) if resume is not None else None
    try:
        with warnings.catch_warnings():
            if resume is not None and resume.in_place:  # resuming in place: expected
                warnings.filterwarnings(
                    "ignore", re.escape(f"Checkpoint directory {out}/checkpoints")
                )
            if resume is not None:  # a new run from another's checkpoint keeps its own best file
                warnings.filterwarnings("ignore", "The dirpath has changed from")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fit_seconds = time.perf_counter() - fit_start
        best, last = best_and_last(trainer)  # before validate() restores the callbacks' state
        epochs, global_step = _progress(trainer, last)
        metrics = _evaluate_best(trainer, module, datamodule, test=cfg.get("test", True))
    finally:  # also when the fit fails or is interrupted
        _finish_wandb(trainer)
    done = global_step - (resume.global_step if resume is not None else 0)
    summary = {
        "monitor": cfg.monitor,
        "value": metrics.get(cfg.monitor),
        "metrics": metrics,
        "best_ckpt": best,
        "last_ckpt": last,
        "epochs": epochs,
        "global_step": global_step,
        "resumed_from": str(resume.path) if resume is not None else None,
        "resumed_from_step": resume.global_step if resume is not None else None,
        "plan_changes": [list(c) for c in changes],  # plan keys changed: [key, was, now]
        **derived,
        # over the whole fit, validation included: a lower bound on training throughput
        "fit_seconds": round(fit_seconds, 2),
        "images_per_sec": (
            round(done * derived["global_batch_size"] / fit_seconds, 1) if fit_seconds else None
        ),
        "output_dir": str(out),
    }
    _write(out / "metrics.json", json.dumps(summary, indent=2))
    return summary


def _resume_note(resume: Checkpoint | None, changes: list) -> str:
    if resume is None:
        return ""
    verb = "resumed in place" if resume.in_place else "new run started"
    note = f" | {verb} from {resume.path} at step {resume.global_step}"
    note += f" ({resume.note})" if resume.note else ""
    return note + (f" | changed: {show(changes)}" if changes else "")


def _progress(trainer: L.Trainer, last: str | None) -> tuple[int, int]:
    """Epochs completed and optimizer steps. Under ``ddp_spawn`` the training ran in child
    processes and this process's trainer never counted: read them from ``last.ckpt``."""
    if trainer.global_step > 0 or not last:
        return trainer.current_epoch, trainer.global_step
    ckpt = open_checkpoint(last, key="last.ckpt")
    return ckpt.epochs_trained or 0, ckpt.global_step


def _finish_wandb(trainer: L.Trainer) -> None:
    """Close the W&B run (Lightning finalizes each logger, but leaves the run open), so the
    next job of a sweep starts its own run; a no-op on the ranks that hold none."""
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb  # imported where W&B is in use only: it takes a second

        wandb.finish()


@rank_zero_only
def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # never a half-written file


@report_config_errors
def main(cfg: DictConfig) -> float | None:
    """The task behind ``python train.py`` (``alexlab.cli``, its one ``@hydra.main``)."""
    try:
        summary = train(cfg)
    except SIGTERMException:  # SaveOnInterrupt has written last.ckpt and said where
        _stopped(cfg)
    print_metrics(summary)
    return summary["value"]  # the number a Hydra sweeper (Optuna) optimises


def _stopped(cfg: DictConfig) -> None:
    """After an interrupt's save: submitit requeues (USR2), or say how to continue, and exit."""
    if SaveOnInterrupt.requeue is not None and rank_zero_only.rank == 0:
        rank_zero_info("[alexlab] handing over to submitit: requeue, then resume in place")
        SaveOnInterrupt.requeue(signal.SIGUSR2, None)  # counts the time-out, requeues, exits
    out = Path(cfg.paths.output_dir)
    sweep = _sweep_name()
    command, name = ("-m command", sweep) if sweep else ("command", out.name)
    rank_zero_info(
        f"[alexlab] stopped; {out} continues from last.ckpt with the same {command} with "
        f"run_name={name}"
    )
    sys.exit(130 if SaveOnInterrupt.stopped_by == "SIGINT" else 0)
