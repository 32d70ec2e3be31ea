"""End to end through ``train(cfg)`` and the CLI, at a tiny size."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from subproc import train_cli

from alexlab.callbacks.nonfinite import NonFiniteLossError
from alexlab.config import ConfigError
from alexlab.evaluate import evaluate
from alexlab.train import train


def test_fast_dev_run(train_cfg):
    summary = train(train_cfg("trainer.fast_dev_run=true"))
    assert summary["global_step"] == 1
    assert 0.0 <= summary["metrics"]["val/acc1"] <= 1.0


@pytest.mark.parametrize("test", [True, False])
def test_the_test_switch_runs_or_skips_the_test_stage(train_cfg, digits_root, tmp_path, test):
    """``test=true`` (the default) tests where the data has a test split; ``test=false`` (the
    lightning-hydra-template's switch) skips it. Here test/ is a copy of val/: same numbers."""
    tree = tmp_path / "tree"
    for split, source in (("train", "train"), ("val", "val"), ("test", "val")):
        shutil.copytree(digits_root / source, tree / split)
    cfg = train_cfg(
        "data=folder",
        f"data.root={tree}",
        "data.source.test_split=test",
        f"test={str(test).lower()}",
        "trainer.fast_dev_run=true",
    )
    summary = train(cfg)
    metrics = summary["metrics"]
    assert ("test/acc1" in metrics) == test
    if test:
        assert metrics["test/acc1"] == pytest.approx(metrics["val/acc1"])


@pytest.mark.parametrize("epochs, lr", [(1, 0.01), (2, 1e-30)])
def test_the_best_checkpoints_metrics_without_validating_the_final_weights_twice(
    train_cfg, eval_cfg, tmp_path, epochs, lr
):
    """A best checkpoint saved at the last step holds the weights in memory: metrics.json takes
    the fit's last validation of them, and nothing is validated again. At lr 1e-30 (below every
    weight's float32 spacing, no BatchNorm statistics) the epochs tie, the best file stays epoch
    0's, and it is validated from the file."""
    passes = tmp_path / "passes.json"
    cfg = train_cfg(
        f"trainer.max_epochs={epochs}",
        f"optimizer.lr={lr}",
        "model.norm=none",
        "+callbacks.passes._target_=helper_callbacks.ValidationPasses",
        f"+callbacks.passes.path={passes}",
    )
    summary = train(cfg)
    ran = json.loads(passes.read_text())
    best = torch.load(summary["best_ckpt"], weights_only=True)
    if epochs == 1:  # the best file is the last step's
        assert best["global_step"] == summary["global_step"] == 3
        assert [(fn, step) for fn, step, _ in ran] == [("fit", 3)]
        assert summary["metrics"]["val/acc1"] == pytest.approx(ran[-1][2])
        # the figure a fresh validation of the best file gives (eval's own path)
        fresh = evaluate(eval_cfg(summary["best_ckpt"], "trainer.limit_test_batches=2"))
        assert summary["metrics"]["val/acc1"] == pytest.approx(fresh["metrics"]["val/acc1"])
    else:
        assert best["global_step"] == 3 and summary["global_step"] == 6
        assert [(fn, step) for fn, step, _ in ran[:2]] == [("fit", 3), ("fit", 6)]
        assert ran[2][0] == "validate" and summary["metrics"]["val/acc1"] == ran[2][2]


def test_run_directory_holds_config_checkpoints_and_metrics(train_cfg, tmp_path):
    cfg = train_cfg("callbacks.best_checkpoint.filename=best", "trainer.max_epochs=2")
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    saved = OmegaConf.load(out / "config.yaml")
    assert saved.model.widths == [8, 16, 16, 16, 16] and saved.data.num_classes == 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    assert metrics["value"] == metrics["metrics"]["val/acc1"]
    assert metrics["epochs"] == 2 and metrics["global_step"] == 6  # 2 epochs x 3 batches
    for name in ("last.ckpt", "best.ckpt"):
        ckpt = torch.load(out / "checkpoints" / name, weights_only=True)  # plain data only
        assert ckpt["alexlab"]["run_config"]["model"]["norm"] == "bn"
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert metrics["best_ckpt"] == str(out / "checkpoints" / "best.ckpt")


def test_resume_from_last_continues_the_step_count(train_cfg, tmp_path):
    first = train(train_cfg(output_dir=tmp_path / "first"))
    assert first["global_step"] == 3
    resumed = train(
        train_cfg(
            f"ckpt_path={first['last_ckpt']}",
            "trainer.max_epochs=2",
            output_dir=tmp_path / "second",
        )
    )
    assert resumed["global_step"] == 6 and resumed["epochs"] == 2


@pytest.mark.parametrize("log_every", [2, 50], ids=["found-on-a-logging-step", "found-at-save"])
def test_non_finite_loss_stops_with_the_steps_and_keeps_the_last_good_checkpoint(
    train_cfg, log_every
):
    # lr x 1e12 from epoch 1 (step 5) on: the loss turns NaN/Inf within a few steps. The guard
    # reads its device flag on logging steps (every 2) or, at 50, only before the epoch-end save.
    cfg = train_cfg(
        "schedule=step",
        "schedule.milestones_epochs=[1]",
        "schedule.gamma=1e12",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=5",
        f"trainer.log_every_n_steps={log_every}",
    )
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    pattern = (
        r"in step (\d+) \(lr ([0-9.e+]+)\), found after step (\d+) \(epoch 1\)\. "
        r"Steps (\d+)-(\d+) ran since"
    )
    found = re.search(pattern, str(err.value))
    assert found, err.value
    first, lr, at, since, until = found.groups()
    first, at, since, until = int(first), int(at), int(since), int(until)
    assert 5 < first <= at and since <= first <= until == at  # the range holds the bad step
    # the failing step's lr: 0.01 x 1e12 from the milestone (step 6) on, whatever step found it
    assert float(lr) == pytest.approx(1e10, rel=1e-3)
    if log_every == 2:
        assert at % 2 == 0 and at - first < 2  # stopped at the first logging step after it
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert str(last) in str(err.value)
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 5  # epoch 0's: nothing after the bad step was written
    assert all(
        torch.isfinite(t).all() for t in saved["state_dict"].values() if t.is_floating_point()
    )
    assert not list((Path(cfg.paths.output_dir) / "checkpoints").glob("*epoch001*"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is not allowed: optimizer.lr takes a number > 0"),
        ("optimizer.lr=0", "optimizer.lr=0 is not allowed: optimizer.lr takes a number > 0"),
        ("data.batch_size=0", "data.batch_size=0 is not allowed: data.batch_size takes an integer"),
        ("data.global_batch_size=100", "not a multiple of data.batch_size=16"),
        ("monitor=val/top1", "monitor=val/top1 is not a logged metric"),
        ("ckpt_path=/no/such.ckpt", "ckpt_path=/no/such.ckpt: no such file"),
    ],
)
def test_config_errors_name_the_key(train_cfg, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        train(train_cfg(override))


def test_data_root_errors(train_cfg, tmp_path):
    with pytest.raises(ConfigError, match="data.root=/no/such/dir: no such directory"):
        train(train_cfg("data=folder", "data.root=/no/such/dir"))
    a_file = tmp_path / "images.tar"
    a_file.write_bytes(b"not a folder")
    with pytest.raises(ConfigError, match=f"data.root={a_file} is a file, not a directory"):
        train(train_cfg("data=folder", f"data.root={a_file}"))


def test_checkpoint_that_is_not_a_checkpoint(train_cfg, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(ConfigError, match="is not a checkpoint"):
        train(train_cfg(f"ckpt_path={garbage}"))
    weights = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, weights)
    with pytest.raises(ConfigError, match="holds no 'state_dict'.*model.weights"):
        train(train_cfg(f"ckpt_path={weights}"))


def test_cli_unknown_option_lists_the_valid_ones(tmp_path):
    result = train_cli("model=vgg16", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/vgg16'" in result.stderr
    assert "alexnet_bn" in result.stderr and "Traceback" not in result.stderr


def test_cli_config_error_is_one_line_and_exit_2(tmp_path):
    result = train_cli("optimizer.lr=-1", f"paths.cache_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("alexlab:")]
    assert errors == [
        "alexlab: config error: optimizer.lr=-1 is not allowed: optimizer.lr takes "
        "a number > 0. Set e.g. optimizer.lr=0.01."
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_default_run_reaches_95_percent(tmp_path):
    """`python train.py` with no arguments: AlexNet-BN on digits, 5 epochs on the CPU. Seeds 42,
    1, 2 gave 96.4%, 97.5%, 96.9% (README): the bar leaves room for seed-to-seed spread."""
    result = train_cli(cwd=tmp_path, timeout=900)  # ~150 s here
    assert result.returncode == 0, result.stderr[-2000:]
    (metrics_file,) = (tmp_path / "runs").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["metrics"]["val/acc1"] >= 0.95
    assert (metrics_file.parent / "checkpoints" / "last.ckpt").is_file()


def test_plateau_schedule_reacts_to_validation_through_training(train_cfg):
    # threshold 10: no epoch counts as an improvement, so with patience 1 the lr drops by 10
    # after every epoch but the first: 3 epochs -> 2 reductions
    cfg = train_cfg(
        "schedule=plateau",
        "schedule.patience=1",
        "schedule.threshold=10",
        "trainer.max_epochs=3",
        "optimizer.lr=0.1",
    )
    summary = train(cfg)
    ckpt = torch.load(summary["last_ckpt"], weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 9  # last.ckpt is the final epoch's
    assert ckpt["lr_schedulers"][0]["lr_lambdas"][0]["reductions"] == 2
    # epoch 2 ran at 0.1 / 10 (reduced after epoch 1); the second reduction applies from the
    # next step on, i.e. after a resume
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01)


def test_lars_with_accumulation_trains(train_cfg):
    cfg = train_cfg(
        "optimizer=lars",
        "data.global_batch_size=32",
        "trainer.limit_train_batches=4",
        "optimizer.lr=1.0",
        "trainer.max_epochs=2",
    )
    summary = train(cfg)
    assert summary["accumulation"] == 2 and summary["global_step"] == 4  # 2 x (4 batches / 2)
    assert summary["metrics"]["val/loss"] < 10


def test_lars_under_bf16_mixed_precision(train_cfg):
    summary = train(train_cfg("optimizer=lars", "trainer.precision=bf16-mixed", "optimizer.lr=0.5"))
    assert summary["global_step"] == 3 and torch.isfinite(
        torch.tensor(summary["metrics"]["val/loss"])
    )


@pytest.mark.slow  # 30 s; the fast run: LARS with accumulation, DDP against a single process
def test_lars_under_two_process_ddp_on_cpu(tmp_path):
    """`strategy=ddp` with 2 gloo processes: one run dir, world size 2 in the derived batch."""
    result = train_cli(
        "strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
        "optimizer=lars",
        "data.global_batch_size=64",
        "data.batch_size=16",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "logger=none",
        f"paths.cache_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics_file,) = (tmp_path / "runs").glob("*/metrics.json")  # both ranks share one dir
    metrics = json.loads(metrics_file.read_text())
    assert metrics["world_size"] == 2 and metrics["accumulation"] == 2
    assert metrics["global_step"] == 2  # 4 batches per rank / accumulation 2


# 16 s; the fast run: a prepared tree through `train.py data=folder`, every recipe
@pytest.mark.slow
def test_cli_trains_on_a_generated_imagenet_tree(tmp_path):
    """`python train.py data=imagenet data.root=...` on a fake-imagenet tree, end to end."""
    from alexlab.data.fake_imagenet import write_fake_imagenet

    root = write_fake_imagenet(tmp_path / "imagenet", classes=3, per_class=8, val_per_class=2)
    result = train_cli(
        "data=imagenet",
        f"data.root={root}",
        "data.num_classes=3",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.image_size=64",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "trainer.max_epochs=1",
        "logger=csv",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and "val/acc1" in metrics["metrics"]  # 24 images / 4
    assert (run_dir / "csv" / "metrics.csv").is_file()
    # one start line with what a user checks; none of the start-up chatter; train.log has all
    output = result.stdout + result.stderr
    (start,) = [line for line in output.splitlines() if "[alexlab] run dir" in line]
    assert f"run dir {run_dir} | data {root}: 24 train, 6 val images | loader " in start
    assert re.search(
        r"loader (DALI, CPU backend, \d+ threads|torch DataLoader, 0 workers) \| 1 "
        r"CPU device\(s\), precision 32-true \| global batch 4 = 4 per device x 1 "
        r"x 1 accumulation \| lr 0.01$",
        start,
    ), start
    for chatter in (
        "GPU available",
        "TPU available",
        "litlogger",
        "LeafSpec",
        "to estimate number of stepping batches",
        "anonymous setting",
    ):
        assert chatter not in output, chatter
    assert "[alexlab] run dir" in (run_dir / "train.log").read_text()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.accelerator=gpu"], "no CUDA GPU is visible"),
        (["trainer.precision=16-mixed"], "float16\\) needs a GPU"),
    ],
)
def test_device_and_precision_errors(train_cfg, overrides, message):
    if torch.cuda.is_available():
        pytest.skip("these describe a machine without a GPU")
    with pytest.raises(ConfigError, match=message):
        train(train_cfg(*overrides))


def test_resume_refuses_a_different_class_count(train_cfg, tmp_path):
    first = train(train_cfg(output_dir=tmp_path / "digits"))  # 10 classes
    tree = tmp_path / "three"
    for split in ("train", "val"):
        for c in range(3):
            (tree / split / str(c)).mkdir(parents=True)
    with pytest.raises(ConfigError, match="other identity settings .*data.root") as refused:
        train(train_cfg("data=folder", f"data.root={tree}", f"ckpt_path={first['last_ckpt']}"))
    assert "data.num_classes" not in str(refused.value)  # null: counted later, not a change
    # the same root with other class folders: the counted classes differ from the checkpoint's
    from alexlab.run.checkpoint import open_checkpoint

    with pytest.raises(ConfigError, match="data.num_classes=3 but ckpt_path=.* trained with 10"):
        open_checkpoint(first["last_ckpt"]).check_classes(3)


class _Payload:
    """An object a safe (weights_only) load must refuse to rebuild."""

    def __reduce__(self):
        return (print, ("this would have run",))


def test_a_tampered_checkpoint_is_refused_clearly(train_cfg, tmp_path):
    tampered = tmp_path / "tampered.ckpt"
    torch.save({"state_dict": {}, "extra": _Payload()}, tampered)
    with pytest.raises(ConfigError, match="tampered with"):
        train(train_cfg(f"ckpt_path={tampered}"))


def test_the_cli_leaves_its_objects_out_of_the_exit_collection(monkeypatch, tmp_path):
    """``train.py`` ends by freezing what is alive (``gc.freeze``): Python's exit then skips
    a full collection over torch's and Lightning's millions of objects (5 s per run on 2
    cores), refused runs included."""
    import gc

    from alexlab import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["train.py", "trainer.max_epochs=abc"])
    before = gc.get_freeze_count()
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.train()
        assert stopped.value.code == 2
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
