"""Recoverable checkpoints, and starts that fail leave nothing behind."""

import shutil
from pathlib import Path

import pytest
import torch
from subproc import train_cli

from alexlab.config import ConfigError
from alexlab.run.files import PREVIOUS, AtomicCheckpointIO
from alexlab.train import train

FAST = ["data.loader=torch"]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, cache_dir):
    """A finished 1-epoch run (3 steps): last.ckpt and best-epoch000.ckpt."""
    from conftest import finished_tiny_run

    return finished_tiny_run(tmp_path_factory, cache_dir, *FAST)


def test_saving_last_keeps_the_previous_last(tmp_path):
    last = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, last)
    io.save_checkpoint({"global_step": 2}, last)
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert torch.load(tmp_path / PREVIOUS, weights_only=True)["global_step"] == 1
    io.save_checkpoint({"global_step": 3}, tmp_path / "best.ckpt")  # only last keeps one
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.ckpt",
        "last-previous.ckpt",
        "last.ckpt",
    ]


def test_a_damaged_last_is_named_and_the_run_resumes_from_the_newest_loadable(
    one_epoch, train_cfg, tmp_path, caplog
):
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a copy cut short
    import logging

    with caplog.at_level(logging.INFO):
        summary = train(train_cfg(*FAST, "trainer.max_epochs=2", output_dir=run))
    start = next(r.message for r in caplog.records if "[alexlab] run dir" in r.message)
    best = run / "checkpoints" / "best-epoch000.ckpt"
    assert f"resumed in place from {best} at step 3 (last.ckpt: " in start
    assert "did not load (renamed to *.damaged); resumed from best-epoch000.ckpt" in start
    assert summary["resumed_from_step"] == 3 and summary["global_step"] == 6
    assert (run / "checkpoints" / "last.ckpt.damaged").is_file()
    assert torch.load(last, weights_only=True)["global_step"] == 6


def test_ckpt_path_into_the_runs_own_directory_resumes_in_place(
    one_epoch, train_cfg, tmp_path, caplog
):
    import logging

    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    best = run / "checkpoints" / "best-epoch000.ckpt"
    with caplog.at_level(logging.INFO):
        summary = train(
            train_cfg(*FAST, f"ckpt_path={best}", "trainer.max_epochs=2", output_dir=run)
        )
    assert any(f"resumed in place from {best} at step 3" in r.message for r in caplog.records)
    assert summary["global_step"] == 6 and Path(summary["last_ckpt"]).parent == best.parent


def test_nothing_left_to_train_is_refused_with_the_numbers_and_leaves_no_directory(
    one_epoch, train_cfg, tmp_path
):
    new = tmp_path / "new"
    (new / ".hydra").mkdir(parents=True)  # what Hydra makes before the task runs
    last = one_epoch / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"trained 1 epochs, asked for 1 .*nothing left"):
        train(train_cfg(*FAST, f"ckpt_path={last}", output_dir=new))
    assert not new.exists()


def test_a_start_that_fails_on_its_input_removes_the_directory_it_made(train_cfg, tmp_path):
    for overrides in (["data=folder", "data.root=/no/such/dir"], ["data.batch_size=4096"]):
        out = tmp_path / "run"
        (out / ".hydra").mkdir(parents=True)
        (out / "train.log").write_text("")
        with pytest.raises(ConfigError):
            train(train_cfg(*FAST, *overrides, output_dir=out))
        assert not out.exists(), overrides


def test_a_runs_dir_that_is_a_file_is_one_paragraph_before_anything_is_made(tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    result = train_cli(f"paths.runs_dir={runs}", "run_name=x", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("alexlab:")]
    assert f"{runs} is a file" in line and "paths.runs_dir" in line


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_runs_dir_is_one_paragraph(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o555)
    result = train_cli(f"paths.runs_dir={runs}", "run_name=x", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{runs} is not writable" in result.stderr
