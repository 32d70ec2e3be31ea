"""alexlab owns the epoch order: a permutation per (seed, epoch), rank slices, whole steps."""

import pytest
import torch
from probe import fit

from alexlab.data import dali
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.order import EpochOrder
from alexlab.data.sources import DigitsSource

LOADERS = ["torch"] + (["dali"] if dali.DALI_AVAILABLE else [])


def test_two_ranks_cover_every_sample_once_per_epoch_with_changing_subsets():
    ranks = [
        EpochOrder(103, batch_size=5, seed=3, rank=r, world_size=2, accumulation=2)
        for r in range(2)
    ]
    assert [o.steps for o in ranks] == [10, 10]  # 103 // (2 ranks x 5 x 2) = 5 steps of 2 batches
    assert ranks[0].dropped == 3
    subsets = []
    for epoch in range(3):
        for o in ranks:
            o.set_epoch(epoch)
        slices = [o.indices() for o in ranks]
        assert all(len(s) == 50 for s in slices)
        assert not set(slices[0]) & set(slices[1])  # no sample on both ranks
        assert len(set(slices[0]) | set(slices[1])) == 100  # all but the 3 left out
        subsets.append(frozenset(slices[0]))
    assert len(set(subsets)) == 3  # rank 0 reads a different subset every epoch


def test_evaluation_reads_every_sample_exactly_once_in_order():
    ranks = [EpochOrder(11, batch_size=4, rank=r, world_size=3, train=False) for r in range(3)]
    assert sum((o.indices() for o in ranks), []) == list(range(11))
    assert [o.steps for o in ranks] == [1, 1, 1]


def test_state_resumes_at_the_next_unseen_batch():
    order = EpochOrder(40, batch_size=4, seed=1)
    order.set_epoch(2)
    full = order.indices()
    order.consumed = 3
    again = EpochOrder(40, batch_size=4, seed=1)
    again.load_state_dict(order.state_dict())
    again.set_epoch(2)  # Lightning sets the same epoch again on resume: the position stays
    assert [i for _, i in again] == full[12:]
    again.set_epoch(3)
    assert again.consumed == 0 and len(list(again)) == 40


@pytest.mark.parametrize("loader", LOADERS)
def test_consecutive_epochs_read_different_orders(cache_dir, loader):
    dm = ImageDataModule(
        root=cache_dir,
        source=DigitsSource,
        loader=loader,
        batch_size=8,
        num_workers=0,
        pin_memory=False,
        dali_threads=1,
        image_size=32,
        resize_size=32,
        scale=(1, 1),
        ratio=(1, 1),
        hflip_prob=0.0,
    )
    probe = fit(dm, epochs=2, limit_train_batches=6, limit_val_batches=0)
    (_, y0), (_, y1) = probe.epoch(0), probe.epoch(1)
    assert y0.numel() == y1.numel() == 48 and not torch.equal(y0, y1)
    order = EpochOrder(len(dm.samples("train")), batch_size=8, seed=dm.seed)
    labels = torch.tensor([label for _, label in dm.samples("train")])
    for epoch, seen in enumerate((y0, y1)):  # the labels of the permutation of (seed, epoch)
        order.set_epoch(epoch)
        assert torch.equal(seen, labels[order.indices()[:48]])


@pytest.mark.slow  # ~100 s on 2 busy cores: 176 micro-batches through train()
def test_digits_with_accumulation_4_makes_44_whole_optimizer_steps(train_cfg):
    from alexlab.train import train

    cfg = train_cfg(
        "data.batch_size=8",
        "data.global_batch_size=32",
        "schedule=cosine",
        "trainer.limit_train_batches=null",
        "trainer.limit_val_batches=1",
    )
    summary = train(cfg)
    assert summary["accumulation"] == 4
    assert summary["global_step"] == 44  # 1,438 images // 32 = 44 steps; 30 left out, counted
    # the cosine schedule was sized for the same 44 steps: it ends at 0 (min_factor 0)
    ckpt = torch.load(summary["last_ckpt"], weights_only=True)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0, abs=1e-12)


def test_two_ranks_read_the_global_batches_of_one_process():
    """Global batch k of 2 ranks x 4 is batch k of 1 process x 8: DDP trains on the same data."""
    one = EpochOrder(50, batch_size=8, seed=5).indices()
    two = [EpochOrder(50, batch_size=4, seed=5, rank=r, world_size=2).indices() for r in (0, 1)]
    for k in range(6):
        assert set(one[8 * k : 8 * k + 8]) == set(
            two[0][4 * k : 4 * k + 4] + two[1][4 * k : 4 * k + 4]
        )
