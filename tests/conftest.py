"""Shared fixtures: a tiny, fast, CPU-only composition of the real configs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from alexlab.config import CONF_DIR

# tests/helpers holds test-only callbacks that configs name as helper_callbacks.<Class>
sys.path.insert(0, str(Path(__file__).parent / "helpers"))

# A ~30K-parameter AlexNet at 64 px (the smallest side its three 3/2 pools accept is 63).
TINY = [
    "model.widths=[8,16,16,16,16]",
    "model.hidden=32",
    "data.image_size=64",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false",
    "++callbacks.progress_bar=null",  # (a RichProgressBar with the bar disabled is an error)
    "logger=none",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache (the digits JPEG tree) shared by the whole session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def digits_root(cache_dir: Path) -> Path:
    """The digits JPEG tree (train/ and val/, 10 class folders): a real folder dataset."""
    from alexlab.data.sources import DigitsSource

    return DigitsSource(cache_dir).root


def compose_config(
    name: str, overrides: list[str], *, output_dir: Path, cache_dir: Path
) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            name,
            overrides=[
                *overrides,
                f"paths.output_dir={output_dir}",
                f"paths.cache_dir={cache_dir}",
            ],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)  # resolves ${hydra:...} as under @hydra.main
    with open_dict(cfg):
        del cfg.hydra  # @hydra.main hands the task a config without it
    return cfg


def finished_tiny_run(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, *overrides: str
) -> Path:
    """A tiny 1-epoch run (3 steps) trained in-process, loader in the main process: its folder."""
    from alexlab.train import train

    out = tmp_path_factory.mktemp("base") / "run"
    cfg = compose_config("train", [*TINY, *overrides], output_dir=out, cache_dir=cache_dir)
    cfg.data.num_workers = 0
    train(cfg)
    return out


@pytest.fixture
def train_cfg(tmp_path: Path, cache_dir: Path) -> Callable[..., DictConfig]:
    """``train_cfg("optimizer=adam", ...)``: the real train config, tiny, writing to tmp_path."""

    def make(*overrides: str, tiny: bool = True, output_dir: Path | None = None) -> DictConfig:
        cfg = compose_config(
            "train",
            [*(TINY if tiny else []), *overrides],
            output_dir=output_dir or tmp_path / "run",
            cache_dir=cache_dir,
        )
        if tiny and "num_workers" in cfg.data and not any("num_workers" in o for o in overrides):
            cfg.data.num_workers = 0  # no worker processes in tests (where the data has them)
        return cfg

    return make


@pytest.fixture
def eval_cfg(tmp_path: Path, cache_dir: Path) -> Callable[..., DictConfig]:
    """``eval_cfg(ckpt, "data=folder", ...)``: the real eval config with TINY's data and trainer
    keys."""
    tiny = [o for o in TINY if o.startswith(("data.", "trainer."))]

    def make(ckpt_path: str | None, *overrides: str) -> DictConfig:
        ckpt = [f"ckpt_path={ckpt_path}"] if ckpt_path else []
        return compose_config(
            "eval",
            [*overrides, *tiny, *ckpt],
            output_dir=tmp_path / "eval",
            cache_dir=cache_dir,
        )

    return make


def write_fake_cifar10(root: Path, *, per_batch: int = 20) -> Path:
    """``root/cifar-10-batches-py/`` in the real format (pickled dicts of uint8 rows)."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump(
                {b"batch_label": name.encode(), b"labels": labels, b"data": data}, f, protocol=2
            )
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_cifar10(tmp_path_factory.mktemp("cifar"))
