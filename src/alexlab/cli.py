"""Console entry points (``train.py``, ``eval.py``, ``alexlab-train``, ``alexlab-eval``).

Only Hydra and alexlab's config modules load before Hydra composes the config, so a bad value is
refused (``ValidateOnStart``) before torch and Lightning load. ``--help`` is answered from the
config files themselves: Hydra's own help re-reads every group of every option (seconds)."""

from __future__ import annotations

import gc
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from alexlab.config import CONF_DIR
from alexlab.console import quiet_known_warnings


def help_text(config_name: str) -> str:
    """Hydra's help layout (its header and footer from conf/hydra/default.yaml): the groups
    with their options, then the top-level keys of ``config_name``.yaml."""
    about = OmegaConf.load(CONF_DIR / "hydra" / "default.yaml").help
    lines = [
        about.header.rstrip(),
        "",
        "== Configuration groups ==",
        "Compose your configuration from those groups (group=option)",
        "",
    ]
    for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        lines.append(f"{group.name}: {', '.join(sorted(f.stem for f in group.glob('*.yaml')))}")
    top = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    top.pop("defaults", None)
    lines += [
        "",
        "== Top-level keys ==",
        "Override any key: foo.bar=value",
        "",
        OmegaConf.to_yaml(top).rstrip(),
        "",
        about.footer.rstrip(),
    ]
    return "\n".join(lines)


def _answer_help(config_name: str) -> None:
    if {"--help", "-h"} & set(sys.argv[1:]):
        print(help_text(config_name))
        sys.exit(0)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _train(cfg: DictConfig) -> float | None:
    quiet_known_warnings()
    from alexlab.train import main

    return main(cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _evaluate(cfg: DictConfig) -> None:
    quiet_known_warnings()
    from alexlab.evaluate import main

    return main(cfg)


def train() -> None:
    _answer_help("train")
    try:
        _train()
    finally:
        _skip_the_exit_collection()


def evaluate() -> None:
    _answer_help("eval")
    try:
        _evaluate()
    finally:
        _skip_the_exit_collection()


def _skip_the_exit_collection() -> None:
    """Python's exit runs a full garbage collection over every object still alive: torch,
    Lightning, torchmetrics, scipy and sympy hold millions, and the pass took 5 s after each run
    on 2 CPU cores. Moved to the permanent generation, which that pass leaves alone, they are
    freed with the process; files, loggers and W&B are closed before this point."""
    gc.freeze()
