"""Every config group option composes and instantiates; --help lists them."""

import sys
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from subproc import run

from alexlab.config import CONF_DIR, validate_config
from alexlab.models.alexnet import AlexNet
from alexlab.train import instantiate_all, train

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
    if group == "strategy" and option != "single":
        extra = ["trainer.devices=2"]  # DDP needs 2 processes (2 gloo ranks on the CPU)
    cfg = train_cfg(f"{group}={option}", *extra)
    validate_config(cfg)  # nothing valid is refused
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
def test_every_experiment_runs_at_a_tiny_size(
    train_cfg, digits_root, cifar_root, experiment, caplog
):
    """The lightning-hydra-template's CI check: every recipe under ``trainer.fast_dev_run``,
    the large-batch LARS ones included (one micro-batch per stage, whatever the global batch:
    1,438 digits hold no step of 32K, and the run says so)."""
    tiny = [f"experiment={experiment}", "trainer.fast_dev_run=true"]
    cfg = train_cfg(*tiny)
    if cfg.data.get("root", "") is None:  # generated data stands in for the real dataset
        stand_in = cifar_root if cfg.data._target_.endswith("CIFAR10DataModule") else digits_root
        tiny += [f"data.root={stand_in}", "data.num_classes=10"]
    cfg = train_cfg(*tiny)
    with caplog.at_level("INFO"):
        summary = train(cfg)
    assert summary["global_step"] == 1 and summary["accumulation"] == 1
    assert summary["global_batch_size"] == cfg.data.batch_size  # one micro-batch of 16
    assert summary["lr"] == cfg.optimizer.lr  # the recipe's
    said = "one micro-batch of 16 per device per stage, no accumulation"
    assert (said in caplog.text) == bool(cfg.data.get("global_batch_size")), caplog.text


def test_help_lists_groups_and_options():
    result = run([sys.executable, str(ROOT / "train.py"), "--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for group in GROUPS:
        assert f"{group}: " in out
    assert "alexnet, alexnet_bn, alexnet_tv" in out


# You et al. 2017, Table 3: (global batch, lr) per recipe; (a) AlexNet warmup 2, (b) AlexNet-BN 5.
YOU2017 = {
    "512": (512, 2),
    "4k": (4096, 10),
    "8k": (8192, 10),
    "16k": (16384, 14),
    "32k": (32768, 14),
}
YOU2017_BN = {
    "512": (512, 2),
    "4k": (4096, 10),
    "8k": (8192, 14),
    "16k": (16384, 23),
    "32k": (32768, 22),
}


@pytest.mark.parametrize(
    ("experiment", "norm", "warmup", "batch", "lr"),
    [(f"you2017_alexnet_lars_{k}", "lrn", 2, *v) for k, v in YOU2017.items()]
    + [(f"you2017_alexnet_bn_lars_{k}", "bn", 5, *v) for k, v in YOU2017_BN.items()],
)
def test_you2017_recipes_compose_to_the_paper_settings(
    train_cfg, experiment, norm, warmup, batch, lr
):
    cfg = train_cfg(f"experiment={experiment}", "data.root=/unused", tiny=False)
    assert cfg.model.norm == norm
    assert (cfg.schedule.warmup_epochs, cfg.data.global_batch_size, cfg.optimizer.lr) == (
        warmup,
        batch,
        lr,
    )
    assert cfg.optimizer._target_ == "alexlab.optim.lars.LARS"
    assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.9, 5e-4)
    assert (cfg.optimizer.trust_coefficient, cfg.schedule.power, cfg.trainer.max_epochs) == (
        0.001,
        2.0,
        100,
    )
