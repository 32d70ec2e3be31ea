import pytest
import torch
from PIL import Image

from alexlab.checks import ConfigError
from alexlab.data.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import DigitsSource

LOADERS = ["torch", "dali"]


def digits_module(cache_dir, **kwargs):
    settings = dict(root=cache_dir, source=DigitsSource, num_workers=0, batch_size=8,
                    image_size=64, resize_size=64, pin_memory=False, dali_threads=1)  # fmt: skip
    return ImageDataModule(**{**settings, **kwargs})


@pytest.mark.parametrize("loader", LOADERS)
def test_loaders_ship_uint8_and_the_device_step_normalises(cache_dir, loader):
    dm = digits_module(cache_dir, num_classes=10, loader=loader)
    assert dm.loader == loader
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (8, 3, 64, 64) and images.dtype == torch.uint8  # 4x smaller
        assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < 10
        out, _ = dm.on_after_batch_transfer((images, labels), 0)
        mean, std = (
            torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
            torch.tensor(IMAGENET_STD).view(3, 1, 1),
        )
        torch.testing.assert_close(out, (images / 255 - mean) / std)  # by hand


def test_both_loaders_read_the_same_list(cache_dir):
    """The same files in the same order: eval labels are equal batch for batch."""
    labels = {loader: torch.cat([y for _, y in digits_module(cache_dir, loader=loader).val_dataloader()])
              for loader in LOADERS}  # fmt: skip
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
    with pytest.raises(ConfigError, match="data.loader=pil is unknown; valid: auto, dali, torch"):
        digits_module(cache_dir, num_classes=10, loader="pil")
    assert digits_module(cache_dir).num_classes == 10  # None: counted from the folders


def test_eval_transform_by_hand():
    # a 300x200 image of one grey level: resize shorter side to 256, crop 224, normalise
    img = Image.new("RGB", (300, 200), (128, 128, 128))
    out = eval_transform(image_size=224, resize_size=256)(img)
    assert out.shape == (3, 224, 224)
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-3, rtol=0)


def test_folder_yaml_lists_the_augment_defaults():
    """folder.yaml names the augmentation keys (so the CLI can override them) with the values
    that Augment defines: the defaults are written once in code, and the YAML cannot drift."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from alexlab.config import CONF_DIR
    from alexlab.data.augment import Augment

    folder = OmegaConf.load(CONF_DIR / "data" / "folder.yaml")
    listed = {f.name for f in fields(Augment)} & set(folder)
    assert listed == {f.name for f in fields(Augment)} - {"mean", "std"}
    assert Augment(**{k: folder[k] for k in listed}) == Augment()
