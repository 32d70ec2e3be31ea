"""Training task: ``train(cfg) -> metrics`` (callable from tests) and the ``@hydra.main`` CLI."""

from __future__ import annotations

import inspect
import json
import re
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from alexlab.callbacks.checkpoint_paths import best_and_last
from alexlab.callbacks.preemption import AtomicCheckpointIO, SaveOnInterrupt
from alexlab.checkpoint import Checkpoint, open_checkpoint
from alexlab.checks import ConfigError, build, report_config_errors
from alexlab.config import CONF_DIR, validate_config
from alexlab.console import print_metrics
from alexlab.gpu import (
    PerProcessSettings,
    set_matmul_precision,
    sync_then_compile,
    warn_if_gpu_unused,
)
from alexlab.loggers import prepare_loggers
from alexlab.optim.batch_size import accumulation_steps, scaled_lr
from alexlab.run_summary import start_line
from alexlab.runs import check_same_run, resume_checkpoint


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """``callbacks: {name: {_target_: ...}}`` -> list of objects (an empty group -> [])."""
    return [instantiate(c) for c in (group or {}).values() if c is not None]


def derive_batch_and_lr(cfg: DictConfig, *, world_size: int) -> dict[str, Any]:
    """Accumulation, global batch and lr, derived once from the config and the world size."""
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


def _build_trainer(cfg: DictConfig, resume: Checkpoint | None) -> L.Trainer:
    prepare_loggers(
        cfg, sweep_name=_sweep_name(), resume_ids=resume.logger_versions if resume else {}
    )
    strategy = instantiate(cfg.strategy)
    if _sweep_name() and _relaunches_the_command(cfg, strategy) and not SLURMEnvironment.detect():
        raise ConfigError(
            "strategy=ddp inside a local sweep (-m) starts processes that re-run the whole "
            "sweep. Use strategy=ddp_spawn for multi-device sweeps on one machine, or "
            "hydra/launcher=slurm (each job its own SLURM allocation)."
        )
    return instantiate(
        cfg.trainer,
        strategy=strategy,
        sync_batchnorm=False,  # alexlab converts BatchNorm itself, before compile (_build_module)
        callbacks=[*instantiate_all(cfg.get("callbacks")), _per_process_settings(cfg)],
        logger=instantiate_all(cfg.get("logger")) or False,
        plugins=_plugins(),
    )


def _relaunches_the_command(cfg: DictConfig, strategy: Any) -> bool:
    """DDP whose processes Lightning starts by running the command again (``start_method``
    ``popen``, DDPStrategy's default), not by ``torch.multiprocessing`` (``ddp_spawn``)."""
    default = inspect.signature(DDPStrategy).parameters["start_method"].default
    return (
        isinstance(strategy, DDPStrategy) and cfg.strategy.get("start_method", default) == "popen"
    )


def _per_process_settings(cfg: DictConfig) -> PerProcessSettings:
    """Compile and matmul precision, applied in each training process (``ddp_spawn``'s too)."""
    return PerProcessSettings(
        compile=bool(cfg.model.get("compile")),
        matmul_precision=cfg.get("float32_matmul_precision"),
    )


def _plugins() -> list[Any]:
    # checkpoint temp files beside the checkpoint, never in /tmp; under SLURM, submitit requeues
    # (alexlab.callbacks.preemption), so Lightning's own auto-requeue (a mid-step save) is off
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def _build_module(cfg: DictConfig, derived: dict, trainer: L.Trainer) -> L.LightningModule:
    """The module, with the resolved config and the derived values in its hyper-parameters
    (Lightning logs them from the training process, and checkpoints keep them)."""
    net = build(cfg.model, compile=False) if cfg.model.get("compile") else build(cfg.model)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    sync = cfg.trainer.get("sync_batchnorm")
    if sync is None and trainer.world_size > 1 and has_bn:
        sync = trainer.strategy.root_device.type == "cuda"  # torch's SyncBatchNorm is CUDA-only
        if not sync:
            rank_zero_info("[alexlab] BatchNorm stays per rank: SyncBatchNorm needs CUDA devices")
    # compiled after this conversion, in each training process (PerProcessSettings.setup)
    net = sync_then_compile(net, sync=bool(sync), compile=False)
    return instantiate(
        cfg.module,
        _recursive_=False,  # run_config is data, not something to build
        _convert_="all",  # plain dicts in checkpoints: they load with weights_only=True
        net=net,
        optimizer=instantiate(cfg.optimizer, lr=derived["lr"]),
        schedule=instantiate(cfg.schedule) if cfg.get("schedule") else None,
        run_config={**OmegaConf.to_container(cfg, resolve=True), "derived": derived},
    )


def _evaluate_best(trainer: L.Trainer, module: L.LightningModule, datamodule: Any) -> dict:
    """Val (and test, where the data has a test split) metrics of the best checkpoint."""
    best, _ = best_and_last(trainer)  # None under fast_dev_run: the weights in memory
    metrics: dict[str, Any] = {}
    stages = [trainer.validate] + ([trainer.test] if datamodule.has_test else [])
    for stage in stages:
        for result in stage(module, datamodule=datamodule, ckpt_path=best, weights_only=True):
            metrics.update(result)
    return metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, re-validate the best checkpoint, write ``metrics.json`` and return its contents."""
    # 1) check everything that needs no data or model; the checkpoint this run starts from
    validate_config(cfg)
    resume = resume_checkpoint(cfg)
    if resume is not None:
        check_same_run(resume, cfg)
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 2) data (checks paths and classes), trainer, derived batch sizes and lr, module
    datamodule = build(cfg.data)
    if cfg.data.get("num_classes") is None:  # data=folder: counted from the class folders
        with open_dict(cfg):
            cfg.data.num_classes = datamodule.num_classes
    if resume is not None:
        resume.check_classes(datamodule.num_classes)
    trainer = _build_trainer(cfg, resume)
    datamodule.trainer = trainer  # as fit attaches it: the start line's per-process loader
    warn_if_gpu_unused(trainer, str(cfg.trainer.get("accelerator")))
    if cfg.get("float32_matmul_precision"):  # before fit (Lightning checks it as it starts);
        set_matmul_precision(trainer, cfg.float32_matmul_precision)  # spawned ranks: setup
    derived = derive_batch_and_lr(cfg, world_size=trainer.world_size)
    trainer.accumulate_grad_batches = derived["accumulation"]
    rank_zero_info(start_line(cfg, out, datamodule, trainer, derived) + _resume_note(resume))
    module = _build_module(cfg, derived, trainer)
    _save_config(cfg, out / "config.yaml")

    # 3) fit, then the best checkpoint's metrics
    start = time.perf_counter()
    ckpt_path = str(resume.path) if resume is not None else None
    with warnings.catch_warnings():
        if resume is not None and resume.key == "resume":  # resuming in place: expected
            warnings.filterwarnings("ignore", re.escape(f"Checkpoint directory {out}/checkpoints"))
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    fit_seconds = time.perf_counter() - start
    best, last = best_and_last(trainer)  # before validate() restores the callbacks' state
    epochs, global_step = _progress(trainer, last)
    metrics = _evaluate_best(trainer, module, datamodule)
    trained_images = (global_step - (resume.global_step if resume else 0)) * derived[
        "global_batch_size"
    ]
    summary = {
        "monitor": cfg.monitor,
        "value": metrics.get(cfg.monitor),
        "metrics": metrics,
        "best_ckpt": best,
        "last_ckpt": last,
        "epochs": epochs,
        "global_step": global_step,
        "resumed_from_step": resume.global_step if resume is not None else None,
        **derived,
        "fit_seconds": round(fit_seconds, 2),
        # over the whole fit, validation included: a lower bound on training throughput
        "images_per_sec": round(trained_images / fit_seconds, 1) if fit_seconds else None,
        "output_dir": str(out),
    }
    _write_json(summary, out / "metrics.json")
    _finish_loggers(trainer)
    return summary


def _resume_note(resume: Checkpoint | None) -> str:
    if resume is None:
        return ""
    verb = "resumed in place" if resume.key == "resume" else "new run started"
    return f" | {verb} from {resume.path} at step {resume.global_step}"


def _progress(trainer: L.Trainer, last: str | None) -> tuple[int, int]:
    """Epochs completed and optimizer steps. Under ``ddp_spawn`` the training ran in child
    processes and this process's trainer never counted: read them from ``last.ckpt``."""
    if trainer.global_step > 0 or not last:
        return trainer.current_epoch, trainer.global_step
    ckpt = open_checkpoint(last, key="last.ckpt")
    return ckpt.epochs_trained, ckpt.global_step


def _finish_loggers(trainer: L.Trainer) -> None:
    """Close each run properly, so the next job of a sweep starts its own W&B run."""
    for logger in trainer.loggers:
        logger.finalize("success")
        experiment = getattr(logger, "_experiment", None)
        if experiment is not None and hasattr(experiment, "finish"):
            experiment.finish()


@rank_zero_only
def _save_config(cfg: DictConfig, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))


@rank_zero_only
def _write_json(data: dict, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)  # never a half-written metrics.json


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@report_config_errors
def main(cfg: DictConfig) -> float | None:
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
    again = (f"the same -m command with run_name={sweep}" if sweep
             else f"the same command with run_name={out.name}")  # fmt: skip
    rank_zero_info(f"[alexlab] stopped; {out} continues from last.ckpt with {again}")
    sys.exit(130 if SaveOnInterrupt.stopped_by == "SIGINT" else 0)


if __name__ == "__main__":
    main()
