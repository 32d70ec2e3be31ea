import pytest
import torch
from PIL import Image

from alexlab.config import ConfigError, validate_section
from alexlab.data.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import DigitsSource

LOADERS = ["torch", "dali"]


def digits_module(cache_dir, **kwargs):
    settings = dict(
        root=cache_dir,
        source=DigitsSource,
        num_workers=0,
        batch_size=8,
        image_size=64,
        resize_size=64,
        pin_memory=False,
        dali_threads=1,
    )
    return ImageDataModule(**{**settings, **kwargs})


@pytest.mark.parametrize("loader", LOADERS)
def test_uint8_for_a_gpu_normalised_by_the_loader_on_a_cpu_the_module_sees_the_same(
    cache_dir, loader
):
    """``normalise_on_device``: None (a CPU fit: the loader's threads or workers normalise) or
    True (what a GPU fit uses: uint8 batches, normalised after the copy)."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    on_cpu = digits_module(cache_dir, num_classes=10, loader=loader)
    for_gpu = digits_module(cache_dir, num_classes=10, loader=loader, normalise_on_device=True)
    assert on_cpu.loader == loader
    for split in ("train_dataloader", "val_dataloader"):  # (same seed: the same crops)
        (images, labels), (pixels, labels_u8) = (
            next(iter(getattr(dm, split)())) for dm in (on_cpu, for_gpu)
        )
        assert pixels.shape == (8, 3, 64, 64) and pixels.dtype == torch.uint8  # 4x smaller
        assert images.shape == (8, 3, 64, 64) and images.dtype == torch.float32
        assert torch.equal(labels, labels_u8) and labels.dtype == torch.int64
        by_hand = (pixels / 255 - mean) / std
        torch.testing.assert_close(images, by_hand, atol=1e-5, rtol=1e-5)
        for dm, batch in ((on_cpu, images), (for_gpu, pixels)):
            out, _ = dm.on_after_batch_transfer((batch, labels), 0)
            torch.testing.assert_close(out, by_hand, atol=1e-5, rtol=1e-5)


def test_both_loaders_read_the_same_list(cache_dir):
    """The same files in the same order: eval labels are equal batch for batch."""
    labels = {
        loader: torch.cat([y for _, y in digits_module(cache_dir, loader=loader).val_dataloader()])
        for loader in LOADERS
    }
    assert torch.equal(labels["torch"], labels["dali"])
    dm = digits_module(cache_dir)
    per_folder = [len(list((dm.source.split_dir("val") / c).iterdir())) for c in dm.classes]
    assert torch.bincount(labels["dali"], minlength=10).tolist() == per_folder


@pytest.mark.parametrize("loader", LOADERS)
def test_train_epoch_has_whole_batches_and_val_sees_every_image(cache_dir, loader):
    dm = digits_module(cache_dir, num_classes=10, loader=loader)
    n_train = sum(1 for _ in dm.source.split_dir("train").rglob("*.jpg"))
    n_val = sum(1 for _ in dm.source.split_dir("val").rglob("*.jpg"))
    train = dm.train_dataloader()
    assert len(train) == n_train // 8  # whole batches: same step count on every rank
    assert sum(1 for _ in train) == len(train)
    assert sum(len(labels) for _, labels in dm.val_dataloader()) == n_val


def test_num_classes_mismatch_and_unknown_loader(cache_dir):
    with pytest.raises(ConfigError, match="data.num_classes=1000 .* 10 class folders"):
        digits_module(cache_dir, num_classes=1000)
    with pytest.raises(ConfigError, match="data.loader=pil is not allowed: .* auto, dali, torch"):
        validate_section("data", {"loader": "pil"})  # the config schema: the one gate
    assert digits_module(cache_dir).num_classes == 10  # None: counted from the folders


def test_eval_transform_by_hand():
    # a 300x200 image of one grey level: resize shorter side to 256, crop 224, normalise
    img = Image.new("RGB", (300, 200), (128, 128, 128))
    out = eval_transform(image_size=224, resize_size=256)(img)
    assert out.shape == (3, 224, 224)
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-3, rtol=0)


def test_the_signature_lists_every_setting_and_every_yaml_key():
    """No ``**kwargs`` hiding settings: each augmentation key is a named argument defaulting to
    ``Augment``'s value, and every key of folder.yaml is a parameter."""
    import inspect
    from dataclasses import fields

    from omegaconf import OmegaConf

    from alexlab.config import CONF_DIR
    from alexlab.data.augment import Augment

    params = inspect.signature(ImageDataModule).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    for f in fields(Augment):
        assert params[f.name].default == getattr(Augment(), f.name), f.name
    folder = OmegaConf.load(CONF_DIR / "data" / "folder.yaml")
    assert set(folder) - {"_target_", "defaults"} <= set(params)
