"""A corrupt file met during training: an error naming it, or skipped and counted."""

import pytest
import torch
from subproc import train_cli

from alexlab.config import CorruptImageError
from alexlab.data import dali, torch_loader
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.fake_imagenet import write_fake_imagenet
from alexlab.data.sources import FolderSource


@pytest.fixture
def bad_tree(tmp_path):
    root = write_fake_imagenet(tmp_path / "bad", classes=2, per_class=6, val_per_class=3)
    good = next((root / "val" / "n00000001").iterdir())
    bad = {
        "truncated": root / "val" / "n00000001" / "zz_truncated.JPEG",
        "garbage": root / "train" / "n00000000" / "zz_garbage.JPEG",
    }
    bad["truncated"].write_bytes(good.read_bytes()[:1500])
    bad["garbage"].write_bytes(b"\xff\xd8 not a jpeg")
    return root, bad


def module(root, **kwargs):
    settings = dict(
        root=root,
        source=FolderSource,
        batch_size=2,
        image_size=64,
        num_workers=0,
        pin_memory=False,
        dali_threads=1,
    )
    return ImageDataModule(**{**settings, **kwargs})


@pytest.mark.skipif(not dali.DALI_AVAILABLE, reason="NVIDIA DALI is not installed")
def test_dali_names_the_files_it_cannot_decode(bad_tree):
    root, bad = bad_tree
    with pytest.raises(CorruptImageError, match="zz_truncated.JPEG: corrupt or truncated"):
        list(module(root, loader="dali").val_dataloader())


def test_torch_loader_names_the_file(bad_tree):
    root, bad = bad_tree
    with pytest.raises(CorruptImageError, match=f"{bad['truncated']}: corrupt or truncated"):
        list(module(root, loader="torch").val_dataloader())


def test_skip_corrupt_skips_and_counts(bad_tree):
    root, _ = bad_tree
    torch_loader.FileDataset.skipped = 0
    dm = module(root, loader="auto", skip_corrupt=True)
    assert dm.loader == "torch"  # per-image skipping lives in the torch loader
    labels = torch.cat([y for _, y in dm.val_dataloader()])
    assert labels.numel() == 7  # every batch keeps its size: the next good image stands in
    assert torch_loader.FileDataset.skipped == 1
    # the truncated file (last of class 1) was replaced by the first image (class 0)
    assert torch.bincount(labels).tolist() == [4, 3]


def test_training_runs_through_skipped_images(bad_tree, train_cfg):
    from alexlab.train import train

    root, _ = bad_tree
    cfg = train_cfg(
        "data=folder",
        f"data.root={root}",
        "data.skip_corrupt=true",
        "data.batch_size=2",
        "trainer.limit_train_batches=null",
        "trainer.limit_val_batches=null",
    )
    summary = train(cfg)
    assert summary["global_step"] == 6  # 13 train files // batch 2, the garbage one replaced
    assert 0 <= summary["metrics"]["val/acc1"] <= 1


@pytest.mark.slow  # 25 s; the fast run: both loaders name the file (in-process), the CLI's one line
def test_cli_stops_with_one_line_naming_the_file_from_a_worker_process(bad_tree, tmp_path):
    root, bad = bad_tree
    result = train_cli(
        "data=folder",
        f"data.root={root}",
        "data.loader=torch",
        "data.num_workers=1",
        "data.batch_size=2",
        "data.image_size=64",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "logger=none",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "++callbacks.progress_bar=null",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("alexlab: data error:")]
    assert len(errors) == 1 and str(bad["garbage"]) in errors[0]
