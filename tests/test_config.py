"""Every config group option composes and instantiates; --help lists them."""

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate

from alexlab.models.alexnet import AlexNet
from alexlab.train import CONF_DIR, instantiate_all, train

GROUPS = ["model", "data", "optimizer", "schedule", "trainer", "strategy", "logger", "callbacks"]
ROOT = Path(__file__).resolve().parents[1]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_experiments_folder_is_the_experiment_group():
    assert (CONF_DIR / "experiment").resolve() == (ROOT / "experiments").resolve()
    assert options("experiment"), "experiments/ holds at least one recipe"


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(train_cfg, digits_root, cifar_root, group, option):
    extra = (
        {  # generated data stands in for what a user points data.root at
            "folder": [f"data.root={digits_root}"],
            "imagenet": [f"data.root={digits_root}", "data.num_classes=10"],
            "cifar10": [f"data.root={cifar_root}"],
        }.get(option, [])
        if group == "data"
        else []
    )
    cfg = train_cfg(f"{group}={option}", *extra)
    if group in ("logger", "callbacks"):
        objects = instantiate_all(cfg.get(group))
        assert all(isinstance(o, L.Callback | L.pytorch.loggers.Logger) for o in objects)
        return
    built = instantiate(cfg[group])
    if group == "model":
        assert isinstance(built, AlexNet)
    elif group == "data":
        assert isinstance(built, L.LightningDataModule)
        assert built.num_classes == (1000 if option == "synthetic" else 10)
    elif group == "optimizer":
        assert callable(built)  # _partial_: params come later
    elif group == "trainer":
        assert isinstance(built, L.Trainer)
    elif group == "strategy":
        assert built == "auto" or isinstance(built, L.pytorch.strategies.Strategy)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_runs_at_a_tiny_size(train_cfg, digits_root, cifar_root, experiment):
    cfg = train_cfg(f"experiment={experiment}", "trainer.fast_dev_run=true")
    if cfg.data.get("root", "") is None:  # generated data stands in for the real dataset
        stand_in = cifar_root if cfg.data._target_.endswith("CIFAR10DataModule") else digits_root
        cfg = train_cfg(f"experiment={experiment}", "trainer.fast_dev_run=true",
                        f"data.root={stand_in}", "data.num_classes=10")  # fmt: skip
    summary = train(cfg)
    assert summary["global_step"] == 1
    assert summary["lr"] == cfg.optimizer.lr


def test_help_lists_groups_and_options():
    out = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for group in GROUPS:
        assert f"{group}: " in out
    assert "alexnet, alexnet_bn, alexnet_tv" in out
