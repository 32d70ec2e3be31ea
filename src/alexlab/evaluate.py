"""Evaluation task: ``evaluate(cfg) -> metrics`` and the ``python eval.py`` CLI.

A checkpoint's network is rebuilt by alexlab's own builder from the checked model settings it
stores (``alexlab.run.checkpoint``), so a model override is refused; the data comes from this
command's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from alexlab.config import ConfigError, build, report_config_errors
from alexlab.console import print_metrics
from alexlab.module import ClassificationModule
from alexlab.run.checkpoint import open_checkpoint
from alexlab.run.rundir import FailedStart


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Top-1/top-5 (centre crop, or 10-crop with ``ten_crop=true``) on the data's test (or
    val) split, of ``ckpt_path`` or of ``model=...`` with ``model.weights=...``. The metrics
    are named for the split read (``val/acc1`` where the data has no test split); a start that
    fails on the user's input leaves no ``runs/eval/<date>/`` behind."""
    out = Path(cfg.paths.output_dir)
    with FailedStart(out):
        L.seed_everything(cfg.seed, workers=True)
        if cfg.get("ten_crop"):
            with open_dict(cfg):
                cfg.data.ten_crop = True
        if cfg.get("ckpt_path") and cfg.get("model"):
            raise ConfigError(
                f"ckpt_path={cfg.ckpt_path} and model=... both name a network. A checkpoint's "
                "network is the one it was trained with: drop the model override, or drop "
                "ckpt_path to evaluate model=... with model.weights=..."
            )
        ckpt = open_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
        datamodule = build(cfg.data)
        if ckpt is not None:
            ckpt.check_classes(datamodule.num_classes)
            module = ckpt.build_module()
        elif cfg.get("model"):  # e.g. alexnet_tv with torchvision's weight file
            module = ClassificationModule(build(cfg.model), num_classes=datamodule.num_classes)
        else:
            raise ConfigError(
                "nothing to evaluate: pass ckpt_path=runs/<run>/checkpoints/<file>.ckpt, or "
                "model=alexnet_tv model.weights=/path/alexnet-owt-7be5be79.pth"
            )
        trainer: L.Trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        split = "test" if datamodule.has_test else "val"  # what the test stage reads
        results = trainer.test(module, datamodule=datamodule)
        metrics = {f"{split}/{k.split('/', 1)[1]}": v for r in results for k, v in r.items()}
        out.mkdir(parents=True, exist_ok=True)
        summary = {
            "ckpt_path": cfg.get("ckpt_path"),
            "weights": cfg.model.get("weights") if cfg.get("model") else None,
            "split": split,
            "views": 10 if cfg.get("ten_crop") else 1,
            "metrics": metrics,
            "output_dir": str(out),
        }
        (out / "eval.json").write_text(json.dumps(summary, indent=2))
        return summary


@report_config_errors
def main(cfg: DictConfig) -> None:
    """The task behind ``python eval.py`` (``alexlab.cli``, its one ``@hydra.main``)."""
    print_metrics(evaluate(cfg), title="alexlab evaluation")
