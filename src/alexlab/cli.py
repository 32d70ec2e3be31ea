"""Console entry points (``train.py``, ``eval.py``, ``alexlab-train``, ``alexlab-eval``).

Only Hydra and alexlab's config modules are imported before Hydra composes the config, so
``--help`` answers at once and a bad value is refused (``alexlab.validate.ValidateOnStart``)
before torch and Lightning load. The task modules are imported once the config is valid.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from alexlab.config import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def train(cfg: DictConfig) -> float | None:
    from alexlab.train import main

    return main(cfg)  # a @hydra.main function called with a config runs its task directly


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def evaluate(cfg: DictConfig) -> None:
    from alexlab.evaluate import main

    return main(cfg)
