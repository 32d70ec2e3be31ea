"""The DALI pipelines on DALI's CPU backend, against the torch loader and by hand."""

import pytest
import torch

from alexlab.data import dali
from alexlab.data.datamodule import ImageDataModule, default_dali_threads
from alexlab.data.sources import FolderSource

pytestmark = pytest.mark.skipif(not dali.DALI_AVAILABLE, reason="NVIDIA DALI is not installed")


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    from alexlab.data.fake_imagenet import write_fake_imagenet

    return write_fake_imagenet(
        tmp_path_factory.mktemp("fake") / "imagenet", classes=4, per_class=12, val_per_class=5
    )


def module(root, **kwargs):
    settings = dict(
        root=root,
        source=FolderSource,
        batch_size=4,
        image_size=64,
        resize_size=73,
        num_workers=0,
        pin_memory=False,
        dali_threads=1,
        loader="dali",
    )
    return ImageDataModule(**{**settings, **kwargs})


def test_same_seed_same_first_batch(fake_root):
    first = [next(iter(module(fake_root, seed=s).train_dataloader())) for s in (7, 7, 8)]
    assert torch.equal(first[0][0], first[1][0]) and torch.equal(first[0][1], first[1][1])
    assert not torch.equal(first[0][0], first[2][0])


def test_eval_pipeline_agrees_with_the_torch_loader(fake_root):
    # ImageNet's eval setting: shorter side 256, centre 224, on ~500x375 JPEGs
    sizes = dict(image_size=224, resize_size=256)
    sizes.update(normalise_on_device=True)  # uint8 pixel levels, as for a GPU
    dali_batch = next(iter(module(fake_root, **sizes).val_dataloader()))
    torch_batch = next(iter(module(fake_root, loader="torch", **sizes).val_dataloader()))
    assert torch.equal(dali_batch[1], torch_batch[1])  # same files in the same order
    diff = (dali_batch[0].float() - torch_batch[0].float()).abs()  # uint8 pixel levels
    # different JPEG decoders and resize kernels: equal almost everywhere, a few edge pixels differ
    assert diff.median() <= 1 and diff.mean() < 2
    channel_means = dali_batch[0].float().mean(dim=(2, 3)) - torch_batch[0].float().mean(dim=(2, 3))
    assert channel_means.abs().max() < 2


def test_an_epoch_cut_short_restarts_cleanly(fake_root):
    loader = module(fake_root).train_dataloader()
    it = iter(loader)
    next(it)
    it.close()  # as when limit_train_batches stops an epoch
    loader.sampler.set_epoch(1)
    assert sum(1 for _ in loader) == len(loader)


def test_resume_state_continues_with_the_same_augmentation(fake_root):
    """DALI's checkpoint (reader position, random state) travels in the loader's state."""
    whole = module(fake_root).train_dataloader()
    whole.sampler.set_epoch(1)
    it, batches = iter(whole), []
    for i in range(len(whole)):
        batches.append(next(it))
        if i == 1:
            state = whole.state_dict()
    assert state["consumed"] == 2 and isinstance(state["dali"], bytes)
    resumed = module(fake_root).train_dataloader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    rest = list(resumed)
    assert len(rest) == len(whole) - 2
    for (x, y), (rx, ry) in zip(batches[2:], rest, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


@pytest.mark.parametrize("crop", ["random_resized", "paper"])
def test_train_pipeline_output(fake_root, crop):
    dm = module(fake_root, crop=crop, image_size=56, normalise_on_device=True)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 56, 56) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64


def test_channels_last_and_fp16_outputs(fake_root):
    dm = module(fake_root, channels_last=True, fp16=True)
    images, labels = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float16
    assert images.is_contiguous(memory_format=torch.channels_last)
    reference = module(fake_root)
    ref, _ = reference.on_after_batch_transfer(next(iter(reference.val_dataloader())), 0)
    torch.testing.assert_close(images.float(), ref, atol=2e-2, rtol=0)  # fp16 rounding


def test_fast_idct_changes_pixels_by_a_few_levels_not_the_augmentation(fake_root):
    """Same seed, same crops and flips: only the JPEG decoding precision differs."""
    sizes = dict(image_size=224, resize_size=256, seed=3)
    exact, labels = next(iter(module(fake_root, dali_fast_idct=False, **sizes).train_dataloader()))
    fast, fast_labels = next(
        iter(module(fake_root, dali_fast_idct=True, **sizes).train_dataloader())
    )
    assert torch.equal(labels, fast_labels)
    levels = (fast.float() - exact.float()).abs()
    assert 0 < levels.mean() < 1.5 and levels.quantile(0.99) <= 5  # measured: 0.95 and 3


def test_dali_threads_default_from_the_cores(fake_root):
    assert module(fake_root, dali_threads=None).dali_threads == default_dali_threads() >= 1


def test_gpu_decoder_settings_follow_the_config_and_nvidias_padding():
    """The mixed decoder's settings (checkable without a GPU): the configured hardware-decoder
    share and NVIDIA's RN50 nvJPEG padding; the CPU decoder takes neither."""
    mixed = dali._decoder(True, 0.4, threads=4)  # (more threads: tests/test_gpu.py)
    assert mixed["device"] == "mixed" and mixed["hw_decoder_load"] == 0.4
    assert (mixed["device_memory_padding"], mixed["host_memory_padding"]) == (211025920, 140544512)
    assert dali._decoder(False, 0.4).keys() == {"device", "output_type"}
