"""Training task: ``train(cfg) -> metrics`` (callable from tests) and the ``@hydra.main`` CLI."""

from __future__ import annotations

import json
import sys
import time
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
from alexlab.checks import (
    ConfigError,
    build,
    check_resume_classes,
    check_train_config,
    report_config_errors,
)
from alexlab.config import CONF_DIR, validate_config
from alexlab.console import print_metrics
from alexlab.loggers import prepare_loggers
from alexlab.optim.batch_size import accumulation_steps, scaled_lr
from alexlab.run_summary import start_line


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


def _build_trainer(cfg: DictConfig, resume: dict | None) -> L.Trainer:
    prepare_loggers(
        cfg, sweep_name=_sweep_name(), resume_ids=(resume or {}).get("logger_versions", {})
    )
    strategy = instantiate(cfg.strategy)
    if (
        _sweep_name()
        and isinstance(strategy, DDPStrategy)
        and strategy._start_method == "popen"
        and not SLURMEnvironment.detect()
    ):
        raise ConfigError(
            "strategy=ddp inside a local sweep (-m) starts processes that re-run the whole "
            "sweep. Use strategy=ddp_spawn for multi-device sweeps on one machine, or "
            "hydra/launcher=slurm (each job its own SLURM allocation)."
        )
    return instantiate(
        cfg.trainer,
        strategy=strategy,
        sync_batchnorm=bool(cfg.trainer.get("sync_batchnorm")),
        callbacks=instantiate_all(cfg.get("callbacks")),
        logger=instantiate_all(cfg.get("logger")) or False,
    )


def _build_module(cfg: DictConfig, derived: dict, trainer: L.Trainer) -> L.LightningModule:
    """The module, with the resolved config and the derived values in its hyper-parameters
    (Lightning logs them from the training process, and checkpoints keep them)."""
    net = build(cfg.model)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    if cfg.trainer.get("sync_batchnorm") is None and trainer.world_size > 1 and has_bn:
        if trainer.strategy.root_device.type == "cuda":  # torch's SyncBatchNorm is CUDA-only
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)  # the default under DDP
            rank_zero_info(
                "[alexlab] BatchNorm synchronised across ranks (trainer.sync_batchnorm=null)"
            )
        else:
            rank_zero_info("[alexlab] BatchNorm stays per rank: SyncBatchNorm needs CUDA devices")
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
    # 1) check everything that needs no data or model
    validate_config(cfg)
    resume = check_train_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 2) data (checks paths and classes), trainer, derived batch sizes and lr, module
    datamodule = build(cfg.data)
    if cfg.data.get("num_classes") is None:  # data=folder: counted from the class folders
        with open_dict(cfg):
            cfg.data.num_classes = datamodule.num_classes
    if resume is not None:
        check_resume_classes(resume, datamodule.num_classes, cfg.ckpt_path)
    trainer = _build_trainer(cfg, resume)
    derived = derive_batch_and_lr(cfg, world_size=trainer.world_size)
    trainer.accumulate_grad_batches = derived["accumulation"]
    rank_zero_info(start_line(cfg, out, datamodule, trainer, derived))
    module = _build_module(cfg, derived, trainer)
    _save_config(cfg, out / "config.yaml")

    # 3) fit, then the best checkpoint's metrics
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    fit_seconds = time.perf_counter() - start
    best, last = best_and_last(trainer)  # before validate() restores the callbacks' state
    metrics = _evaluate_best(trainer, module, datamodule)
    trained_images = trainer.global_step * derived["global_batch_size"]
    summary = {
        "monitor": cfg.monitor,
        "value": metrics.get(cfg.monitor),
        "metrics": metrics,
        "best_ckpt": best,
        "last_ckpt": last,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        **derived,
        "fit_seconds": round(fit_seconds, 2),
        # over the whole fit, validation included: a lower bound on training throughput
        "images_per_sec": round(trained_images / fit_seconds, 1) if fit_seconds else None,
        "output_dir": str(out),
    }
    _write_json(summary, out / "metrics.json")
    _finish_loggers(trainer)
    return summary


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
    except SIGTERMException:  # SaveOnSigterm has written last.ckpt and said where
        sys.exit(0)
    print_metrics(summary)
    return summary["value"]  # the number a Hydra sweeper (Optuna) optimises


if __name__ == "__main__":
    main()
