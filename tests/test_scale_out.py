"""DDP on the CPU (gloo), Hydra sweeps (local, Optuna, submitit), the report, W&B offline."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from subproc import side_by_side, train_cli

from alexlab.config import CONF_DIR
from alexlab.data.fake_imagenet import write_fake_imagenet
from alexlab.report import main as report_main
from alexlab.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY_CLI = [
    "model.widths=[8,16,16,16,16]",
    "model.hidden=32",
    "data.batch_size=16",
    "data.image_size=64",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "++callbacks.progress_bar=null",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    # 32 train / 8 val images, 4 classes: one full batch of 32 or two ranks of 16
    return write_fake_imagenet(
        tmp_path_factory.mktemp("ddp") / "data", classes=4, per_class=8, val_per_class=2
    )


SWEEPS = {  # test -> its `python train.py -m ...` arguments
    "test_multirun_gives_each_job_a_directory_and_the_report_reads_them": ["optimizer=sgd,adamw"],
    "test_optuna_sweep_runs_trials_and_records_the_best": [
        "sweep=optuna",
        "hydra.sweeper.n_trials=2",
    ],
    "test_slurm_launcher_composes_and_submitit_runs_a_job_locally": [
        "hydra/launcher=submitit_local"
    ],
}
DDP_TEST = "test_ddp_matches_a_single_process_run_with_the_same_global_batch"


def ddp_same(tree: Path, loader: str) -> list[str]:
    """The DDP test's settings shared by its 2-rank run and its single process."""
    return [
        "model=alexnet_tv",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "model.dropout=0",
        "data=folder",
        f"data.root={tree}",
        "data.crop=paper",
        "data.resize_size=64",
        "data.image_size=64",
        "data.hflip_prob=0",
        "data.global_batch_size=32",
        "trainer.max_epochs=3",
        "optimizer.lr=0.05",
        f"data.loader={loader}",
        "data.num_workers=2",
    ]


def ddp_args(tree: Path, loader: str, cwd: Path) -> list[str]:
    return [
        *ddp_same(tree, loader),
        "strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "data.batch_size=16",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "++callbacks.progress_bar=null",
        "+callbacks.rank_dump._target_=helper_callbacks.RankMetricsDump",
        f"+callbacks.rank_dump.dirpath={cwd / 'ranks'}",
    ]


@pytest.fixture(scope="module")
def launched(request, tmp_path_factory, cache_dir, digits_root, tree):
    """The CLI runs of the selected tests below (the DDP run, the sweeps), started together
    when the first of them runs: each spends most of its time importing torch on one core (a
    DDP run's ranks one after the other; under submitit, waiting on its job), so side by side
    they take about half as long. test id -> (its future ``CompletedProcess``, its working
    directory). The digits tree is made first, once."""
    helpers = os.pathsep.join([str(ROOT / "tests" / "helpers"), os.environ.get("PYTHONPATH", "")])
    started = {}
    with side_by_side() as launch:
        for item in request.session.items:
            if item.path != request.path:
                continue
            if item.originalname == DDP_TEST:
                cwd = tmp_path_factory.mktemp("ddp")
                args = ddp_args(tree, item.callspec.params["loader"], cwd)
                env = {"PYTHONPATH": helpers}
            elif item.originalname in SWEEPS:
                cwd = tmp_path_factory.mktemp("sweep")
                args = ["-m", *SWEEPS[item.originalname], *TINY_CLI]
                args.append(f"paths.cache_dir={cache_dir}")
                env = None
            else:
                continue
            cmd = [sys.executable, str(ROOT / "train.py"), *args]
            started[item.name] = launch(cmd, cwd=cwd, env=env), cwd
        yield started


def finished(launched: dict, request: pytest.FixtureRequest) -> Path:
    """The working directory of this test's command, once it has exited 0."""
    future, cwd = launched[request.node.name]
    result = future.result()
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd


# torch: slow (45 s); the torch loader's rank slices are checked in-process
# (tests/data/test_order.py)
@pytest.mark.parametrize("loader", ["dali", pytest.param("torch", marks=pytest.mark.slow)])
def test_ddp_matches_a_single_process_run_with_the_same_global_batch(
    launched, request, tree, tmp_path, train_cfg, loader
):
    """2 gloo ranks x 16 vs 1 process x 32, deterministic data, no dropout, no BatchNorm:
    the same full-batch gradient each step, so the same weights and val metrics."""
    single = train(  # while the DDP run (started by `launched`) runs
        train_cfg(
            *ddp_same(tree, loader),
            "data.batch_size=32",
            "trainer.limit_train_batches=null",
            "trainer.limit_val_batches=null",
            "+callbacks.rank_dump._target_=helper_callbacks.RankMetricsDump",
            f"+callbacks.rank_dump.dirpath={tmp_path / 'single'}",
        )
    )
    cwd = finished(launched, request)
    (ddp_metrics,) = (cwd / "runs").glob("*/metrics.json")
    ddp_summary = json.loads(ddp_metrics.read_text())
    assert ddp_summary["world_size"] == 2 and ddp_summary["global_step"] == 3
    ranks = [json.loads((cwd / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # metrics are reduced over ranks: every rank logs the same
    assert single["global_step"] == 3
    for key in ("val/loss", "val/acc1"):
        assert ddp_summary["metrics"][key] == pytest.approx(single["metrics"][key], abs=1e-4)
    # train epoch metrics are sums over both ranks' samples: the single process's values
    single_last = json.loads((tmp_path / "single" / "rank0.json").read_text())
    for key in ("train/loss_epoch", "train/acc1", "train/acc5"):
        assert ranks[0][key] == pytest.approx(single_last[key], abs=1e-4)


def test_multirun_gives_each_job_a_directory_and_the_report_reads_them(launched, request):
    cwd = finished(launched, request)
    (sweep,) = (cwd / "runs" / "multirun").iterdir()
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert (job / "metrics.json").is_file() and (job / "config.yaml").is_file()
    assert report_main([str(sweep)]) == 0
    table = (sweep / "report.md").read_text()
    assert "| optimizer |" in table and "| sgd |" in table and "| adamw |" in table
    assert len((sweep / "report.csv").read_text().splitlines()) == 3  # header + 2 jobs
    assert (sweep / "report.png").stat().st_size > 1000


@pytest.mark.slow  # 75 s; the fast run: multirun dirs, ddp_spawn refusal of subprocess DDP, DDP
def test_multirun_with_ddp_spawn_is_the_supported_way(tmp_path, cache_dir):
    loggers = [a if a != "logger=csv" else "logger=many" for a in TINY_CLI]  # W&B offline too
    env = {"HOME": str(tmp_path / "home"), "WANDB_API_KEY": "", "WANDB_MODE": ""}
    result = train_cli(
        "-m",
        "strategy=ddp_spawn",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "optimizer=sgd",
        *loggers,
        f"paths.cache_dir={cache_dir}",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    assert sorted(d.name for d in sweep.iterdir() if d.is_dir()) == ["0"]  # nothing extra
    assert len(list((tmp_path / "runs").iterdir())) == 1
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # the training ran in spawned children: the counts still are the real ones
    assert metrics["epochs"] == 1 and metrics["global_step"] == 3 and metrics["images_per_sec"] > 0
    assert metrics["last_ckpt"] == str(sweep / "0" / "checkpoints" / "last.ckpt")
    assert list((sweep / "0" / "wandb").glob("offline-run-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "runs"]  # nothing elsewhere


def test_multirun_with_subprocess_ddp_is_refused_clearly(tmp_path):
    """Refused by the config rule before torch loads and before the sweep makes a folder."""
    result = train_cli("-m", "strategy=ddp", "trainer.devices=2", *TINY_CLI, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Use strategy=ddp_spawn" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_optuna_sweep_runs_trials_and_records_the_best(launched, request):
    cwd = finished(launched, request)
    (sweep,) = (cwd / "runs" / "multirun").iterdir()
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "optimizer.lr" in best


def test_slurm_launcher_composes_and_submitit_runs_a_job_locally(launched, request):
    GlobalHydra.instance().clear()  # composed as `train.py hydra/launcher=slurm --cfg hydra` does
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        launcher = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True).hydra
    assert launcher.launcher._target_.endswith(".SlurmLauncher")
    assert launcher.launcher.max_num_timeout == 3
    cwd = finished(launched, request)
    (metrics,) = (cwd / "runs" / "multirun").glob("*/0/metrics.json")
    assert json.loads(metrics.read_text())["global_step"] == 3


def test_wandb_goes_offline_without_a_key_and_resume_keeps_the_run_id(
    train_cfg, tmp_path, monkeypatch
):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    first = train(train_cfg("logger=wandb", output_dir=tmp_path / "first"))
    assert list((tmp_path / "first" / "wandb").glob("offline-run-*"))
    run_id = torch.load(first["last_ckpt"], weights_only=True)["alexlab"]["logger_versions"][
        "WandbLogger"
    ]
    resumed = train(
        train_cfg(
            "logger=wandb",
            f"ckpt_path={first['last_ckpt']}",
            "trainer.max_epochs=2",
            output_dir=tmp_path / "second",
        )
    )
    again = torch.load(resumed["last_ckpt"], weights_only=True)["alexlab"]["logger_versions"][
        "WandbLogger"
    ]
    assert again == run_id
    assert list((tmp_path / "second" / "wandb").glob(f"offline-run-*-{run_id}"))


def test_logger_many_writes_csv_tensorboard_wandb_and_filter_images(
    train_cfg, tmp_path, monkeypatch
):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    train(train_cfg("logger=many", output_dir=tmp_path / "run"))
    out = tmp_path / "run"
    assert (out / "csv" / "metrics.csv").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert list((out / "wandb").glob("offline-run-*"))
    from PIL import Image

    grid = Image.open(out / "filters" / "conv1_epoch000.png")
    assert grid.size[0] > 100  # 8 filters of 11x11, upscaled x4, in a row


@pytest.mark.slow  # two gloo processes: about a minute on 2 cores
def test_checkpoints_hold_each_ranks_rng_state_and_each_rank_restores_its_own(tmp_path):
    helpers = os.pathsep.join([str(ROOT / "tests" / "helpers"), os.environ.get("PYTHONPATH", "")])
    ddp = train_cli(
        *TINY_CLI,
        "strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "logger=none",
        "+callbacks.rank_rng._target_=rng_dump.RankRng",
        f"+callbacks.rank_rng.dirpath={tmp_path / 'ranks'}",
        cwd=tmp_path,
        env={"PYTHONPATH": helpers},
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (last,) = (tmp_path / "runs").glob("*/checkpoints/last.ckpt")
    saved = torch.load(last, weights_only=True)["alexlab"]["rng"]["per_rank"]
    at_save = [torch.load(tmp_path / "ranks" / f"rank{r}.pt") for r in (0, 1)]
    assert not torch.equal(at_save[0], at_save[1])  # two different streams ...
    assert [torch.equal(s["torch"], a) for s, a in zip(saved, at_save, strict=True)] == [True, True]

    # ... and a rank restores its own entry (here rank 0 of a single process)
    from alexlab.run.state import restore_rng_state

    torch.manual_seed(123)
    restore_rng_state({"per_rank": saved}, 0, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), at_save[0])
    torch.set_rng_state(saved[1]["torch"])  # rank 1's entry is a state of its own, not a view
    assert torch.equal(torch.get_rng_state(), at_save[1])
