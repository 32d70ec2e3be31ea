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

from alexlab.checks import ConfigError, build, check_train_config, report_config_errors
from alexlab.console import print_metrics
from alexlab.module import all_metric_names
from alexlab.optim.batch_size import accumulation_steps

# conf/ sits at the repository root, beside src/ (an absolute path: Hydra would read a relative
# one from inside a package as a python module path)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """``callbacks: {name: {_target_: ...}}`` -> list of objects (an empty group -> [])."""
    return [instantiate(c) for c in (group or {}).values() if c is not None]


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
    net = build(cfg.model)
    module = instantiate(
        cfg.module,
        _recursive_=False,  # run_config is data, not something to build
        _convert_="all",  # plain dicts in checkpoints: they load with weights_only=True
        net=net,
        optimizer=instantiate(cfg.optimizer),
        schedule=instantiate(cfg.schedule) if cfg.get("schedule") else None,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        strategy=instantiate(cfg.strategy),
        callbacks=instantiate_all(cfg.get("callbacks")),
        logger=instantiate_all(cfg.get("logger")) or False,
    )
    # Derived once, here, from the world size Lightning resolved (devices x nodes).
    trainer.accumulate_grad_batches = accumulation_steps(
        global_batch_size=cfg.data.get("global_batch_size"),
        batch_size=cfg.data.batch_size,
        world_size=trainer.world_size,
    )
    global_batch = cfg.data.batch_size * trainer.world_size * trainer.accumulate_grad_batches
    rank_zero_info(
        f"[alexlab] run dir {out} | global batch {global_batch} = {cfg.data.batch_size} per "
        f"device x {trainer.world_size} device(s) x {trainer.accumulate_grad_batches} "
        f"accumulation | lr {cfg.optimizer.lr}"
    )
    _save_config(cfg, out / "config.yaml")

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    fit_seconds = time.perf_counter() - start

    # Read before validate(): restoring the best checkpoint also restores the callback's state.
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    last = getattr(trainer.checkpoint_callback, "last_model_path", "") or None
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
        "global_batch_size": global_batch,
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
