"""Console entry points (``train.py``, ``eval.py``, ``alexlab-train``, ``alexlab-eval``).

Only Hydra and alexlab's config modules load before Hydra composes the config, so a bad value is
refused (``ValidateOnStart``) before torch and Lightning load. ``--help`` is answered from the
config files themselves: Hydra's own help re-reads every group of every option (seconds)."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable
from typing import Any

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


def _command(config_name: str, task: str) -> Callable[[], None]:
    """The entry point that runs ``task``'s ``main`` on the config Hydra composes from
    ``config_name``.yaml."""

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def run_task(cfg: DictConfig) -> Any:
        quiet_known_warnings()
        return importlib.import_module(task).main(cfg)

    def command() -> None:
        if {"--help", "-h"} & set(sys.argv[1:]):
            print(help_text(config_name))
            sys.exit(0)
        try:
            run_task()
        finally:
            # Python's exit runs a full garbage collection over every object still alive: torch,
            # Lightning, torchmetrics, scipy and sympy hold millions, and the pass took 5 s after
            # each run on 2 CPU cores. Moved to the permanent generation, which that pass leaves
            # alone, they are freed with the process; files, loggers and W&B are closed by now.
            gc.freeze()

    return command


train = _command("train", "alexlab.train")
evaluate = _command("eval", "alexlab.evaluate")
