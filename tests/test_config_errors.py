"""Bad values are refused through the real CLI before any work: exit status 2, one paragraph
from alexlab naming the key, no traceback, no run directory, no torch import. And nothing
valid is refused: every option of every group passes the same validation pass."""

import functools
import json
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from subproc import ROOT, run, train_cli

from alexlab.config import CONF_DIR, ConfigError, report_config_errors, validate_config
from alexlab.config.rules import check_hardware
from alexlab.train import train

# (overrides, the key the message must name): types, ranges, choices, cross-key rules
BAD = [
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["trainer.max_epochs=1.5"], "trainer.max_epochs"),
    (["trainer.max_epochs=0"], "trainer.max_epochs"),
    (["trainer.max_steps=0"], "trainer.max_steps"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs"),  # with max_steps=-1: never ends
    (["trainer.limit_train_batches=0"], "trainer.limit_train_batches"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches"),
    (["trainer.limit_val_batches=0"], "trainer.limit_val_batches"),
    (["trainer.limit_val_batches=-3"], "trainer.limit_val_batches"),
    (["trainer.precision=8"], "trainer.precision"),
    (["trainer.accelerator=tpu"], "trainer.accelerator"),
    (["trainer.devices=0"], "trainer.devices"),
    (["trainer.devices=abc"], "trainer.devices"),
    (["trainer.devices=64"], "trainer.devices"),  # more processes than CPU cores
    (["trainer.num_nodes=0"], "trainer.num_nodes"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val"),
    (["trainer.enable_progress_bar=false"], "trainer.enable_progress_bar"),
    (["trainer.sync_batchnorm=maybe"], "trainer.sync_batchnorm"),
    (["trainer.fast_dev_run=-2"], "trainer.fast_dev_run"),
    (["data.batch_size=abc"], "data.batch_size"),
    (["data.batch_size=0"], "data.batch_size"),
    (["data.global_batch_size=100"], "data.global_batch_size"),  # not a multiple of 64 x 1
    (["data.image_size=0"], "data.image_size"),
    (["data.image_size=32"], "data.image_size"),  # AlexNet's feature map needs 63 px
    (["data.resize_size=48"], "data.resize_size"),
    (["data.crop=foo"], "data.crop"),
    (["data.scale=[0.9,0.1]"], "data.scale"),
    (["data.scale=[0.5]"], "data.scale"),
    (["data.ratio=[0,1]"], "data.ratio"),
    (["data.mean=[0.5]"], "data.mean"),
    (["data.std=[0.5,0.5,0]"], "data.std"),
    (["data.hflip_prob=2"], "data.hflip_prob"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["data.loader=pil"], "data.loader"),
    (["data.fp16=true"], "data.fp16"),
    (["data.dali_threads=0"], "data.dali_threads"),
    (["+data.colour=red"], "data.colour"),
    (["data.source.val_fraction=1.5"], "data.source.val_fraction"),
    (["model.norm=gn"], "model.norm"),
    (["model.groups=3"], "model.groups"),
    (["model.groups=2", "model.widths=[8,15,16,16,16]"], "model.widths"),
    (["model.widths=[8,16,16]"], "model.widths"),
    (["model.dropout=1.5"], "model.dropout"),
    (["model.init=xavier"], "model.init"),
    (["model.weights=/no/such.pth"], "model.weights"),
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.lr=abc"], "optimizer.lr"),
    (["optimizer.lr=inf"], "optimizer.lr"),
    (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
    (["optimizer.nesterov=true", "optimizer.momentum=0"], "optimizer.nesterov"),
    (["optimizer=lars", "optimizer.momentum=2"], "optimizer.momentum"),
    (["optimizer=lars", "optimizer.trust_coefficient=0"], "optimizer.trust_coefficient"),
    (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas"),
    (["schedule.warmup_epochs=-1"], "schedule.warmup_epochs"),
    (["schedule.kind=linear"], "schedule.kind"),
    (["schedule=step", "schedule.milestones_epochs=[60,30]"], "schedule.milestones_epochs"),
    (["schedule=poly", "schedule.power=0"], "schedule.power"),
    (["schedule=plateau", "schedule.mode=up"], "schedule.mode"),
    (["module.label_smoothing=1.5"], "module.label_smoothing"),
    (["strategy=ddp", "trainer.devices=1"], "strategy=ddp"),
    (["strategy=ddp_spawn", "strategy.start_method=thread"], "strategy.start_method"),
    (["+callbacks.extra=1"], "callbacks.extra"),
    (["callbacks.run_images.every_n_epochs=0"], "callbacks.run_images.every_n_epochs"),
    (["seed=-1"], "seed"),
    (["monitor_mode=up"], "monitor_mode"),
    (["scale_lr=maybe"], "scale_lr"),
    (["lr_reference_batch=0"], "lr_reference_batch"),
    (["+lr=5"], "lr"),
    (["monitor=val/top1"], "monitor"),  # last: the one that imports the metric names
]


def _lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _no_hydra_run_config():
    """As on the command line before a run starts: no ``${hydra:runtime...}`` values yet (an
    earlier test's ``HydraConfig.set_config`` would leave its run's values behind)."""
    HydraConfig.instance().cfg = None


@functools.cache
def _composed(groups: tuple[str, ...]) -> DictConfig:
    """The train config as the CLI composes it, for one choice of group options."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(groups))


def _with(args: list[str]) -> DictConfig:
    """``args`` applied as the CLI would: group choices composed, values parsed by Hydra's own
    override parser and set (``+key`` adds a key)."""
    overrides = OverridesParser.create().parse_overrides(args)
    groups = tuple(
        o.input_line
        for o in overrides
        if "." not in o.key_or_group and (CONF_DIR / o.key_or_group).is_dir()
    )
    cfg = _composed(groups).copy()
    for o in overrides:
        if o.input_line in groups:
            continue
        OmegaConf.update(cfg, o.key_or_group, o.value(), force_add=o.is_add())
    return cfg


@pytest.mark.parametrize(("args", "key"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_every_bad_value_is_refused_naming_its_key(args, key):
    with pytest.raises(ConfigError) as error:
        validate_config(_with(args))
    message = str(error.value)
    assert key in message and "\n" not in message, message


# a sample across the groups and rule kinds for the fast suite; all of BAD in the slow one
CLI_SAMPLE = [0, 5, 10, 20, 23, 27, 35, 39, 46, 51, 55, 60, 67]


def _cli_batch(cases: list, tmp_path: Path) -> None:
    """Every case through ``alexlab.cli.train`` (what ``python train.py`` runs), all in one
    process: exit 2, a message naming the key, no traceback, at most 6 lines, no run folder."""
    result = run(
        [
            sys.executable,
            str(ROOT / "tests" / "helpers" / "cli_batch.py"),
            json.dumps([args for args, _ in cases]),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for (args, key), got in zip(cases, report["results"], strict=True):
        lines = _lines(got["stderr"])
        assert got["code"] == 2, (args, got)
        assert "Traceback" not in got["stderr"] and len(lines) <= 6, (args, got["stderr"])
        assert lines[0].startswith("alexlab: config error: "), (args, lines)
        assert key in lines[0], (args, key, lines[0])
    assert not (tmp_path / "runs").exists(), "a refused config made a run directory"


def test_bad_values_through_the_cli(tmp_path):
    _cli_batch([BAD[i] for i in CLI_SAMPLE], tmp_path)


@pytest.mark.slow
def test_all_bad_values_through_the_cli(tmp_path):
    assert len(BAD) >= 40
    _cli_batch(BAD, tmp_path)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["trainer.max_epochs=abc"], "trainer.max_epochs=abc"),
        (["+lr=5"], "optimizer.lr"),
        (["data.fp16=true"], "trainer.precision=16-mixed"),
        (["strategy=ddp", "trainer.devices=1"], "strategy=single"),
    ],
)
def test_python_train_py_refuses_in_a_moment(tmp_path, args, key):
    """The real ``python train.py KEY=VALUE``: refused before torch loads, no run folder."""
    result = train_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = _lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("alexlab: config error: ") and key in lines[0]
    assert not (tmp_path / "runs").exists()


def test_validation_imports_no_torch(tmp_path):
    result = run(
        [
            sys.executable,
            str(ROOT / "tests" / "helpers" / "cli_batch.py"),
            json.dumps([["optimizer.lr=-1"], ["data.image_size=10"]]),
        ],
        cwd=tmp_path,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["code"] for r in report["results"]] == [2, 2]
    assert report["heavy_modules"] == []


def test_a_bad_job_in_a_sweep_leaves_no_folder(tmp_path):
    result = train_cli("-m", "optimizer.lr=-1,-2", cwd=tmp_path)  # a swept value: per job
    assert result.returncode == 2, result.stderr[-2000:]
    assert "optimizer.lr=-1 is not allowed" in result.stderr and "Traceback" not in result.stderr
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    result = train_cli("-m", "optimizer.lr=0.1,0.2", "data.batch_size=0", cwd=tmp_path)
    assert result.returncode == 2 and "data.batch_size=0 is not allowed" in result.stderr
    assert "Launching" not in result.stdout  # refused before the sweep starts


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# tests/test_config.py validates the options of the other groups as it instantiates them
VALID_GROUPS = ["module", "paths", "sweep", "debug", "experiment"]


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in VALID_GROUPS for o in options(g)])
def test_every_option_passes_validation(train_cfg, group, option):
    validate_config(train_cfg(f"{group}={option}", tiny=group != "experiment"))


def test_zero_steps_per_epoch_is_refused(train_cfg):
    """The digits tree has 1,438 training images: a per-device batch of 2,048 gives 0 steps."""
    with pytest.raises(ConfigError, match=r"data.batch_size=2048 .* 0 training steps .* 1438"):
        train(train_cfg("data.batch_size=2048", "trainer.limit_train_batches=null"))


def test_a_global_batch_the_data_cannot_fill_once_is_refused(train_cfg):
    """1,438 images make 89 micro-batches of 16; 16,384 needs 1,024 per step: no whole step
    (each epoch holds whole optimizer steps only). Under fast_dev_run it smoke-runs instead
    (tests/test_config.py, every experiment)."""
    with pytest.raises(ConfigError, match=r"needs 1024 micro-batches .* make 89: no whole step"):
        train(train_cfg("data.global_batch_size=16384"))


@pytest.mark.parametrize("devices", ["-1", "auto", "4"])
def test_every_visible_gpu_counts_in_the_global_batch(devices):
    """On a node with 4 GPUs, ``trainer.devices=-1`` (and ``auto``) is 4 processes: a global batch
    of 96 at 16 per device is 1.5 steps' worth, which no accumulation gives; 128 is 2."""
    args = ["trainer=gpu", f"trainer.devices={devices}", "trainer.precision=16-mixed"]
    args += ["strategy=ddp", "data.batch_size=16"]
    with pytest.raises(ConfigError, match="data.global_batch_size"):
        check_hardware(_with([*args, "data.global_batch_size=96"]), cpus=16, gpus=lambda: 4)
    check_hardware(_with([*args, "data.global_batch_size=128"]), cpus=16, gpus=lambda: 4)


def test_a_fraction_that_leaves_no_batch_is_refused(train_cfg):
    with pytest.raises(ConfigError, match=r"limit_train_batches=0.001"):
        train(train_cfg("trainer.limit_train_batches=0.001"))


def test_a_diverging_run_ends_in_one_paragraph(train_cfg, capsys):
    """The non-finite loss guard's error, raised mid-training, is one paragraph, exit 2."""
    cfg = train_cfg("optimizer.lr=1e9", "trainer.limit_train_batches=6")
    with pytest.raises(SystemExit) as exit_:
        report_config_errors(train)(cfg)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = _lines(err)
    assert lines[-1].startswith("alexlab: training stopped: non-finite loss")
    assert "optimizer.lr" in lines[-1]
    assert "Traceback" not in err


def test_a_worker_error_is_one_paragraph(capsys):
    """A DataLoader worker's error arrives with the worker's traceback in its message."""
    message = (
        "Caught CorruptImageError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x.py", line 1, in f\nalexlab.config.errors.CorruptImageError: '
        "/data/train/a/1.jpg cannot be decoded. Remove it or set data.skip_corrupt=true."
    )

    def task():
        raise RuntimeError(message)

    with pytest.raises(SystemExit) as exit_:
        report_config_errors(task)()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "alexlab: data error: /data/train/a/1.jpg cannot be decoded. Remove it or set "
        "data.skip_corrupt=true.\n"
    )


def test_help_answers_without_torch(tmp_path):
    result = run(
        [sys.executable, "-X", "importtime", str(ROOT / "train.py"), "--help"], cwd=tmp_path
    )
    assert result.returncode == 0 and "optimizer: adam, adamw, lars, sgd" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert not {"torch", "lightning"} & imported


def test_config_dir_is_found(tmp_path):
    assert (CONF_DIR / "train.yaml").is_file() and (CONF_DIR / "experiment").is_dir()
    assert Path(CONF_DIR).is_absolute()
