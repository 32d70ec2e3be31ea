"""Training task: ``train(cfg) -> metrics`` (callable from tests) and the ``@hydra.main`` CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from alexlab.callbacks.checkpoint_paths import best_and_last
from alexlab.checks import ConfigError, build, check_train_config, report_config_errors
from alexlab.console import print_metrics
from alexlab.module import all_metric_names
from alexlab.optim.batch_size import accumulation_steps, scaled_lr

# conf/ sits at the repository root, beside src/ (an absolute path: Hydra would read a relative
# one from inside a package as a python module path)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, re-validate the best checkpoint, write ``metrics.json`` and return its contents."""
    check_train_config(cfg)
    if cfg.monitor not in all_metric_names():
        raise ConfigError(
            f"monitor={cfg.monitor} is not a logged metric; valid: {all_metric_names()}"
        )
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    datamodule = build(cfg.data)  # checks data paths and class counts now
    if cfg.data.get("num_classes") is None:  # data=folder: counted from the class folders
        with open_dict(cfg):
            cfg.data.num_classes = datamodule.num_classes
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        strategy=instantiate(cfg.strategy),
        callbacks=instantiate_all(cfg.get("callbacks")),
        logger=instantiate_all(cfg.get("logger")) or False,
    )
    derived = derive_batch_and_lr(cfg, world_size=trainer.world_size)
    trainer.accumulate_grad_batches = derived["accumulation"]
    rank_zero_info(
        f"[alexlab] run dir {out} | global batch {derived['global_batch_size']} = "
        f"{cfg.data.batch_size} per device x {trainer.world_size} device(s) x "
        f"{derived['accumulation']} accumulation | lr {derived['lr']:g}"
        + (f" (scaled from {cfg.optimizer.lr:g})" if cfg.get("scale_lr") else "")
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(derived)

    module = instantiate(
        cfg.module,
        _recursive_=False,  # run_config is data, not something to build
        _convert_="all",  # plain dicts in checkpoints: they load with weights_only=True
        net=build(cfg.model),
        optimizer=instantiate(cfg.optimizer, lr=derived["lr"]),
        schedule=instantiate(cfg.schedule) if cfg.get("schedule") else None,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    _save_config(cfg, out / "config.yaml")

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    fit_seconds = time.perf_counter() - start

    # Read before validate(): restoring the best checkpoint also restores the callbacks' state.
    best, last = best_and_last(trainer)
    ckpt = best  # None under fast_dev_run or callbacks=none: validate the weights in memory
    metrics: dict[str, Any] = {}
    for result in trainer.validate(
        module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True
    ):
        metrics.update(result)
    if datamodule.has_test:
        for result in trainer.test(
            module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True
        ):
            metrics.update(result)
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
        "output_dir": str(out),
    }
    _write_json(summary, out / "metrics.json")
    return summary


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
    summary = train(cfg)
    print_metrics(summary)
    return summary["value"]  # the number a Hydra sweeper (Optuna) optimises


if __name__ == "__main__":
    main()
