"""Evaluation task: ``evaluate(cfg) -> metrics`` and the ``python eval.py`` CLI.

The network is rebuilt from the config stored in the checkpoint (no need to repeat model
overrides); the data comes from this command's config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from alexlab.checks import ConfigError, build, check_checkpoint, report_config_errors
from alexlab.config import CONF_DIR
from alexlab.console import print_metrics
from alexlab.module import ClassificationModule


def load_module(
    ckpt_path: str, *, num_classes: int | None = None, ckpt: dict | None = None
) -> ClassificationModule:
    """Rebuild the network from a checkpoint's stored run config and load its weights
    (``ckpt``: the checkpoint already opened by the caller, to read it once)."""
    ckpt = ckpt if ckpt is not None else check_checkpoint(ckpt_path)
    run_config = ckpt.get("hyper_parameters", {}).get("run_config")
    if not run_config:
        raise ConfigError(
            f"ckpt_path={ckpt_path} holds no alexlab run config; was it written by alexlab?"
        )
    trained_classes = run_config["model"]["num_classes"]
    if num_classes is not None and num_classes != trained_classes:
        raise ConfigError(
            f"data.num_classes={num_classes} but ckpt_path={ckpt_path} was trained with "
            f"{trained_classes} classes. Evaluate on the data it was trained for (its config: "
            f"data={run_config['data'].get('_target_', '?')}, root={run_config['data'].get('root')})."
        )
    net = instantiate(run_config["model"], weights=None)
    module = ClassificationModule(net, num_classes=trained_classes)
    module.load_state_dict(ckpt["state_dict"])
    return module


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Top-1/top-5 (centre crop, or 10-crop with ``ten_crop=true``) on the data's test (or
    val) split, of ``ckpt_path`` or of ``model=...`` with ``model.weights=...``."""
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("ten_crop"):
        with open_dict(cfg):
            cfg.data.ten_crop = True
    datamodule = build(cfg.data)
    if cfg.get("ckpt_path"):
        module = load_module(cfg.ckpt_path, num_classes=datamodule.num_classes)
    elif cfg.get("model"):
        net = build(cfg.model)  # e.g. alexnet_tv with torchvision's weight file
        module = ClassificationModule(net, num_classes=datamodule.num_classes)
    else:
        raise ConfigError(
            "nothing to evaluate: pass ckpt_path=runs/<run>/checkpoints/<file>.ckpt, or "
            "model=alexnet_tv model.weights=/path/alexnet-owt-7be5be79.pth"
        )
    trainer: L.Trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    metrics: dict[str, Any] = {}
    for result in trainer.test(module, datamodule=datamodule):
        metrics.update(result)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "ckpt_path": cfg.get("ckpt_path"),
        "weights": cfg.model.get("weights") if cfg.get("model") else None,
        "views": 10 if cfg.get("ten_crop") else 1,
        "metrics": metrics,
        "output_dir": str(out),
    }
    (out / "eval.json").write_text(json.dumps(summary, indent=2))
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@report_config_errors
def main(cfg: DictConfig) -> None:
    print_metrics(evaluate(cfg), title="alexlab evaluation")


if __name__ == "__main__":
    main()
