"""The augmentation contract, through ImageDataModule and a real Trainer, on both loaders."""

import numpy as np
import pytest
import torch
from PIL import Image
from probe import fit

from alexlab.data import dali
from alexlab.data.augment import Augment, OnDevice
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import FolderSource

LOADERS = ["torch"] + (["dali"] if dali.DALI_AVAILABLE else [])
RAW = dict(mean=(0, 0, 0), std=(1, 1, 1))  # batches in [0, 1]: pixel value / 255


def write_tree(root, pixels: np.ndarray, *, per_class: int = 4, classes: int = 2):
    """``root/{train,val}/c<i>/<j>.png`` (lossless), every image the same (H, W, 3) uint8."""
    for split in ("train", "val"):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(pixels).save(root / split / f"c{c}" / f"{j}.png")
    return root


def module(root, loader, **kwargs):
    settings = dict(
        root=root,
        source=FolderSource,
        loader=loader,
        batch_size=4,
        num_workers=0,
        pin_memory=False,
        dali_threads=1,
        hflip_prob=0.0,
        **RAW,
    )
    return ImageDataModule(**{**settings, **kwargs})


@pytest.mark.parametrize("loader", LOADERS)
def test_paper_crop_never_leaves_the_central_square(tmp_path, loader):
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[:, :, 0] = 255  # red outside the central 64 x 64 square ...
    pixels[:, 16:80] = (0, 255, 0)  # ... green inside
    root = write_tree(tmp_path, pixels)
    paper = fit(module(root, loader, crop="paper", resize_size=64, image_size=48), epochs=2)
    images, _ = paper.epoch(1)
    assert images.shape == (8, 3, 48, 48) and images.dtype == torch.float32
    assert images[:, 0].max() < 0.05 and images[:, 1].min() > 0.95  # all green
    whole = fit(
        module(root, loader, crop="random_resized", scale=(1, 1), ratio=(1.5, 1.5), image_size=48)
    )
    assert whole.epoch(0)[0][:, 0].max() > 0.95  # control: the full image shows its red sides


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("on_device", [None, True], ids=["cpu-fit", "as-for-a-gpu"])
def test_lighting_gives_identical_images_different_colour_offsets(tmp_path, loader, on_device):
    """On float batches the loader normalised (a CPU fit) and on uint8 ones (a GPU fit)."""
    root = write_tree(tmp_path, np.full((32, 32, 3), 128, np.uint8))
    probe = fit(
        module(
            root,
            loader,
            crop="paper",
            resize_size=32,
            image_size=32,
            lighting_std=0.5,
            normalise_on_device=on_device,
        ),
        limit_val_batches=1,
    )
    images, _ = probe.epoch(0)
    offsets = images * 255 - 128  # (8, 3, 32, 32)
    per_image = offsets.mean(dim=(2, 3))  # (8, 3)
    torch.testing.assert_close(offsets, per_image[:, :, None, None].expand_as(offsets))  # uniform
    assert per_image.abs().max() > 1  # levels of 255
    assert len({tuple(o.round(decimals=3).tolist()) for o in per_image}) == 8  # all different
    # the offset is eigvec @ (alpha * eigval) (2012 §4.1): its PCA coordinates / eigval = alpha
    eig = OnDevice(Augment(lighting_std=0.5)).constants(torch.device("cpu"))
    alpha = per_image / 255 @ eig["eigvec"] / eig["eigval"]
    assert 0.1 < alpha.std() < 1.5  # drawn with std 0.5
    val_images = probe.val_batches[0][0]
    torch.testing.assert_close(val_images * 255, torch.full_like(val_images, 128.0))  # eval: off


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("hflip_prob", [0.0, 1.0])
def test_flip_probability(tmp_path, loader, hflip_prob):
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, :16] = 255  # left half white
    root = write_tree(tmp_path, pixels)
    dm = module(
        root,
        loader,
        crop="random_resized",
        scale=(1, 1),
        ratio=(1, 1),
        image_size=32,
        hflip_prob=hflip_prob,
    )
    images, _ = fit(dm).epoch(0)
    left, right = images[..., :8].mean(dim=(1, 2, 3)), images[..., -8:].mean(dim=(1, 2, 3))
    flipped = (right > left).tolist()
    assert flipped == [hflip_prob == 1.0] * 8


@pytest.mark.parametrize("loader", LOADERS)
def test_scale_range_sets_the_crop_area(tmp_path, loader):
    pixels = np.repeat(np.repeat((np.arange(64) * 4).astype(np.uint8)[None, :, None], 64, 0), 3, 2)
    root = write_tree(tmp_path, pixels)  # a horizontal ramp 0..252: x encoded in the value

    def spans(scale):
        dm = module(root, loader, crop="random_resized", scale=scale, ratio=(1, 1), image_size=32)
        images, _ = fit(dm).epoch(0)
        row = images[:, 0, 16, :] * 255  # (8, 32)
        return row.max(dim=1).values - row.min(dim=1).values

    quarter = spans((0.25, 0.25))  # a 32 x 32 crop: half the ramp, 31 * 4 = 124 levels
    assert ((quarter > 105) & (quarter < 140)).all(), quarter
    assert (spans((1.0, 1.0)) > 220).all()  # the whole ramp


def test_an_unknown_setting_is_named():
    from alexlab.config import ConfigError, validate_section

    with pytest.raises(ConfigError, match="data.crops is not a key of this data option"):
        validate_section("data", {"crops": "paper"})
    with pytest.raises(ConfigError, match="data.crop=ten is not allowed: .* random_resized, paper"):
        validate_section("data", {"crop": "ten"})  # the config schema: the one gate


def test_device_constants_are_made_once():
    on_device = OnDevice(Augment())
    first = on_device.constants(torch.device("cpu"))
    on_device(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), train=True)
    assert on_device.constants(torch.device("cpu"))["scale"] is first["scale"]
