"""The DALI pipelines on DALI's CPU backend, against the torch loader and by hand."""

import pytest
import torch

from alexlab.data import dali
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import FolderSource

pytestmark = pytest.mark.skipif(not dali.DALI_AVAILABLE, reason="NVIDIA DALI is not installed")


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    from alexlab.data.fake_imagenet import write_fake_imagenet

    return write_fake_imagenet(tmp_path_factory.mktemp("fake") / "imagenet", classes=4,
                               per_class=12, val_per_class=5)  # fmt: skip


def module(root, **kwargs):
    settings = dict(root=root, source=FolderSource, batch_size=4, image_size=64, resize_size=73,
                    num_workers=0, pin_memory=False, dali_threads=1, loader="dali")  # fmt: skip
    return ImageDataModule(**{**settings, **kwargs})


def loader_for(dm, split, *, train, shard_id, num_shards):
    dm._placement = lambda: dict(
        shard_id=shard_id, num_shards=num_shards, gpu=False, device_id=None
    )
    return dm._dali_loader(split, train=train)


def test_eval_shards_cover_every_sample_exactly_once(fake_root):
    dm = module(fake_root)
    labels = []
    for shard in range(3):
        loader = loader_for(dm, "val", train=False, shard_id=shard, num_shards=3)
        batches = list(loader)
        assert len(batches) == len(loader)
        labels.append(torch.cat([y for _, y in batches]))
    assert sum(t.numel() for t in labels) == 20  # 4 classes x 5: none padded, none lost
    assert torch.bincount(torch.cat(labels)).tolist() == [5, 5, 5, 5]


def test_train_shards_step_together_and_never_repeat_within_an_epoch(fake_root):
    dm = module(fake_root)
    loaders = [loader_for(dm, "train", train=True, shard_id=s, num_shards=2) for s in range(2)]
    assert len(loaders[0]) == len(loaders[1]) == 48 // (2 * 4)  # same steps on every rank
    for _epoch in range(2):
        labels = torch.cat([y for loader in loaders for _, y in loader])
        assert labels.numel() == 48  # 48 images, 2 shards x 6 steps x 4: each once
        assert torch.bincount(labels).tolist() == [12, 12, 12, 12]


def test_same_seed_same_first_batch(fake_root):
    first = [next(iter(module(fake_root, seed=s).train_dataloader())) for s in (7, 7, 8)]
    torch.testing.assert_close(first[0][0], first[1][0])
    assert torch.equal(first[0][1], first[1][1])
    assert not torch.equal(first[0][0], first[2][0])


def test_eval_pipeline_agrees_with_the_torch_loader(fake_root):
    # ImageNet's eval setting: shorter side 256, centre 224, on ~500x375 JPEGs
    sizes = dict(image_size=224, resize_size=256)
    dali_batch = next(iter(module(fake_root, **sizes).val_dataloader()))
    torch_batch = next(iter(module(fake_root, loader="torch", **sizes).val_dataloader()))
    assert torch.equal(dali_batch[1], torch_batch[1])  # same files in the same order
    diff = (dali_batch[0] - torch_batch[0]).abs()
    # different JPEG decoders and resize kernels: equal almost everywhere, a few edge pixels
    # differ (normalised units; 0.02 is about 1/255 of the pixel range)
    assert diff.median() < 1e-3 and diff.mean() < 0.02
    channel_means = (dali_batch[0].mean(dim=(2, 3)) - torch_batch[0].mean(dim=(2, 3))).abs()
    assert channel_means.max() < 0.02


def test_an_epoch_cut_short_restarts_cleanly(fake_root):
    loader = module(fake_root).train_dataloader()
    it = iter(loader)
    next(it)
    it.close()  # as when limit_train_batches stops an epoch
    assert sum(1 for _ in loader) == len(loader)


@pytest.mark.parametrize("crop", ["random_resized", "paper"])
def test_train_pipeline_output(fake_root, crop):
    images, labels = next(iter(module(fake_root, crop=crop, image_size=56).train_dataloader()))
    assert images.shape == (4, 3, 56, 56) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    # normalised with ImageNet statistics: pixels 0..255 map into about [-2.2, 2.7]
    assert images.min() > -2.2 and images.max() < 2.7


def test_channels_last_and_fp16_outputs(fake_root):
    dm = module(fake_root, channels_last=True, fp16=True)
    images, _ = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float16
    assert images.is_contiguous(memory_format=torch.channels_last)
    reference, _ = next(iter(module(fake_root).val_dataloader()))
    torch.testing.assert_close(images.float(), reference, atol=2e-2, rtol=0)  # fp16 rounding


def test_fast_idct_changes_pixels_by_a_few_levels_not_the_augmentation(fake_root):
    """Same seed, same crops and flips: only the JPEG decoding precision differs."""
    sizes = dict(image_size=224, resize_size=256, seed=3)
    exact, labels = next(iter(module(fake_root, dali_fast_idct=False, **sizes).train_dataloader()))
    fast, fast_labels = next(
        iter(module(fake_root, dali_fast_idct=True, **sizes).train_dataloader())
    )
    assert torch.equal(labels, fast_labels)
    levels = (fast - exact).abs() * 0.226 * 255  # normalised units back to 0..255 pixel levels
    assert 0 < levels.mean() < 1.5 and levels.quantile(0.99) <= 5  # measured: 0.95 and 3
