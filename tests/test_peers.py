"""The peers table of `make bench`: alexlab's loaders and whole job next to what a user would
otherwise write (torchvision's reference loader, NVIDIA's DALI example, a plain loop)."""

import pytest

from alexlab.data import dali
from alexlab.data.fake_imagenet import write_fake_imagenet
from benchmarks import peers


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers") / "tree"
    write_fake_imagenet(root, classes=2, per_class=4)
    return root


def test_each_loader_row_sits_next_to_its_peer_with_the_same_batches(tree):
    rows = peers.loader_rows(tree, batch_size=2, workers=1, batches=1, rounds=2)
    pairs = [(r["alexlab"], r["peer"]) for r in rows]
    assert pairs[0] == ("torch loader", "torchvision reference")
    if dali.DALI_AVAILABLE:
        assert pairs[1] == ("DALI loader (CPU)", "NVIDIA example (CPU)")
    for row in rows:
        assert all(len(rates) == 2 for rates in row["runs"].values())
        assert row["ratio"] == pytest.approx(row["alexlab_rate"] / row["peer_rate"])
    ours, _ = next(iter(peers.alexlab_loader(tree, "torch", batch_size=2, workers=0)))
    theirs, _ = next(iter(peers.torchvision_reference(tree, batch_size=2, workers=0)))
    assert ours.shape == theirs.shape == (2, 3, 224, 224) and ours.dtype == theirs.dtype
    # both normalised with ImageNet's statistics: values span the same range
    assert ours.min() > -2.2 and theirs.min() > -2.2 and ours.max() < 2.7 and theirs.max() < 2.7
    assert "| torch loader |" in peers.table(rows, [])


@pytest.mark.skipif(not dali.DALI_AVAILABLE, reason="DALI is not installed")
def test_dali_stage_rows_grow_both_pipelines_one_operator_at_a_time(tree):
    rows = peers.dali_stage_rows(tree, batch_size=2, batches=1, rounds=2)
    assert [r["stage"] for r in rows] == list(peers.STAGES)
    for side in ("alexlab", "NVIDIA example"):
        # decoding, resizing and normalising two JPEGs cost more than reading their bytes
        assert 0 < rows[0][side] < rows[-1][side]
    table = peers.table([], [], rows)
    assert "| + resize |" in table and "| DALI CPU train pipeline, 1 thread" in table


@pytest.mark.slow  # four processes, an AlexNet epoch each
def test_whole_job_rows_time_the_plain_loop_the_reference_script_and_train_py(tree):
    jobs = peers.whole_job_rows(tree, batch_size=4, workers=1, loaders=["torch"])
    plain, reference, ours = jobs
    assert plain["steps"] == reference["steps"] == ours["steps"] == 2  # 8 images, batch 4
    for job in jobs:
        assert 0 < job["to_first_step"] < job["wall"] and 0 < job["after_last_step"] < job["wall"]
    assert ours["fit"] < ours["wall"] and ours["ratio"] == pytest.approx(
        reference["wall"] / ours["wall"]
    )
