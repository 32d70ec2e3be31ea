"""The resume contract: every key is identity, plan or free; identity changes are refused, plan
changes are used from the resumed step, with the schedule re-planned over the steps left."""

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from alexlab.callbacks.nonfinite import NonFiniteLossError
from alexlab.config import ConfigError
from alexlab.run.contract import CONTRACT, flatten, kind_of
from alexlab.train import train

LOGGED = ["logger=csv", "trainer.log_every_n_steps=1", "data.loader=torch"]


def test_every_key_of_every_group_option_has_a_kind(train_cfg):
    options = [
        "optimizer=lars",
        "optimizer=adamw",
        "schedule=plateau",
        "schedule=step",
        "logger=many",
        "strategy=ddp",
        "data=folder",
        "model=alexnet",
        "data=synthetic",
    ]
    for option in ["", *options]:
        extra = ["data.root=/x"] if option == "data=folder" else []
        cfg = train_cfg(*([option] if option else []), *extra)
        keys = flatten(OmegaConf.to_container(cfg, resolve=False))
        unknown = [k for k in keys if kind_of(k) is None]
        assert unknown == [], (option, unknown)
    assert {kind for kind, _, _ in CONTRACT} == {"identity", "plan", "free"}
    assert kind_of("model.hidden") == kind_of("optimizer._target_") == "identity"
    assert kind_of("data.root") == kind_of("data.num_classes") == "identity"
    assert kind_of("optimizer.lr") == kind_of("trainer.max_epochs") == "plan"
    assert kind_of("data.batch_size") == kind_of("schedule.warmup_epochs") == "plan"
    assert kind_of("data.num_workers") == kind_of("trainer.devices") == "free"


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, cache_dir):
    """A finished 1-epoch run (3 steps, cosine from lr 0.01), logged to CSV every step."""
    from conftest import finished_tiny_run

    return finished_tiny_run(tmp_path_factory, cache_dir, *LOGGED)


def cosine(lr, step, total, warmup=0):
    """The schedule by hand: linear warmup over `warmup` steps, then cosine to 0 at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def logged_lr(run: Path) -> dict[int, float]:
    """train/lr by step from the run's metrics.csv (the latest row of a step that ran twice)."""
    rows = csv.DictReader((run / "csv" / "metrics.csv").open())
    return {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}


CASES = {
    # overrides, the steps the resumed run trains, the lr each must train at
    "lr": (
        ["trainer.max_epochs=2", "optimizer.lr=0.05"],
        range(3, 6),
        lambda s: cosine(0.05, s, 6),
    ),
    "epochs+steps": (
        ["trainer.max_epochs=2", "trainer.limit_train_batches=6"],
        range(3, 9),
        lambda s: cosine(0.01, s, 9),
    ),  # 3 done + 6 new: not 2 x 6 (lr 0 at 9)
    "batch": (
        ["trainer.max_epochs=2", "data.global_batch_size=32"],
        range(3, 5),
        lambda s: cosine(0.01, s, 5),
    ),  # accumulation 2: 2 steps per epoch now
    "warmup": (
        ["trainer.max_epochs=3", "schedule.warmup_epochs=2"],
        range(3, 9),
        lambda s: cosine(0.01, s, 9, warmup=6),
    ),  # epoch 2 ends at step 3 + 3
    "schedule": (
        ["trainer.max_epochs=2", "schedule=step", "schedule.milestones_epochs=[1.4]"],
        range(3, 6),
        lambda s: 0.01 * (0.1 if s >= 4 else 1.0),
    ),
}
FAST = ("epochs+steps",)  # (the lr case is also the non-finite advice test below)


@pytest.mark.parametrize(
    "case", [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in CASES]
)
def test_a_plan_change_trains_the_rest_of_the_run_on_the_new_plan(
    one_epoch, train_cfg, tmp_path, caplog, case
):
    overrides, steps, expected = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    with caplog.at_level(logging.INFO):
        summary = train(train_cfg(*LOGGED, *overrides, output_dir=run))
    lrs = logged_lr(run)
    assert max(lrs) == steps[-1] and summary["global_step"] == steps[-1] + 1
    assert [lrs[s] for s in steps] == pytest.approx([expected(s) for s in steps], rel=1e-5)
    assert all(lrs[s] > 0 for s in steps)
    # what changed is said at start, and recorded
    changed = [f"{k.lstrip('+')} " for k in (o.split("=")[0] for o in overrides)]
    start = next(r.message for r in caplog.records if "[alexlab] run dir" in r.message)
    assert "| changed: " in start and all(c in start for c in changed if c != "schedule "), start
    recorded = json.loads((run / "metrics.json").read_text())
    assert {k for k, _, _ in recorded["plan_changes"]} >= {"trainer.max_epochs"}
    saved = OmegaConf.load(run / "config.yaml")
    for override in overrides:
        key, value = override.split("=", 1)
        if "." in key:
            assert str(OmegaConf.select(saved, key)).replace(" ", "") == value, key


def test_an_identity_change_is_refused_before_any_work(one_epoch, train_cfg, tmp_path, digits_root):
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    before = sorted(p.name for p in run.rglob("*"))
    other = tmp_path / "other"
    shutil.copytree(digits_root, other)  # the same 10 classes, another tree
    with pytest.raises(ConfigError) as refused:
        train(
            train_cfg(
                *LOGGED, "trainer.max_epochs=2", "data=folder", f"data.root={other}", output_dir=run
            )
        )
    message = str(refused.value)
    assert "data.root" in message and "another run_name" in message
    assert sorted(p.name for p in run.rglob("*")) == before


def test_the_nonfinite_advice_works_as_printed(one_epoch, train_cfg, tmp_path):
    """Diverge with a huge lr, then do what the message says: the run resumes from the last
    good checkpoint and trains on at the lower lr."""
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    command = [*LOGGED, "trainer.max_epochs=2"]
    with pytest.raises(NonFiniteLossError) as diverged:
        train(train_cfg(*command, "optimizer.lr=1e6", output_dir=run))
    message = str(diverged.value)
    assert f"Last good checkpoint: {run}/checkpoints/last.ckpt" in message, message
    assert "Lower optimizer.lr" in message and "run the same command again" in message
    summary = train(train_cfg(*command, "optimizer.lr=0.005", output_dir=run))
    assert summary["resumed_from_step"] == 3 and summary["global_step"] == 6
    lrs = logged_lr(run)
    assert [lrs[s] for s in (3, 4, 5)] == pytest.approx([cosine(0.005, s, 6) for s in (3, 4, 5)])
    assert math.isfinite(summary["metrics"]["val/loss"])
