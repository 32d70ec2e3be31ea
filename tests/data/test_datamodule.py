import pytest
import torch
from PIL import Image

from alexlab.checks import ConfigError
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import DigitsSource
from alexlab.data.torch_loader import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

LOADERS = ["torch", "dali"]


def digits_module(cache_dir, **kwargs):
    settings = dict(root=cache_dir, source=DigitsSource, num_workers=0, batch_size=8,
                    image_size=64, resize_size=64, pin_memory=False, dali_threads=1)  # fmt: skip
    return ImageDataModule(**{**settings, **kwargs})


@pytest.mark.parametrize("loader", LOADERS)
def test_batches_are_normalised_nchw_float_with_int64_labels(cache_dir, loader):
    dm = digits_module(cache_dir, num_classes=10, loader=loader)
    assert dm.loader == loader
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (8, 3, 64, 64) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < 10
        assert -3 < images.min() < images.max() < 3  # ImageNet-normalised range


def test_labels_follow_the_class_folders(cache_dir):
    dm = digits_module(cache_dir, num_classes=10, loader="torch")
    dataset = dm.val_dataloader().dataset
    for path, label in dataset.samples[::50]:
        assert dm.classes[label] == path.split("/")[-2]
    # DALI: every val image once, and each label as often as its class folder has files
    dali_labels = torch.cat(
        [y for _, y in digits_module(cache_dir, loader="dali").val_dataloader()]
    )
    per_folder = [len(list((dm.source.split_dir("val") / c).iterdir())) for c in dm.classes]
    assert torch.bincount(dali_labels, minlength=10).tolist() == per_folder


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


def test_train_transform_flip_setting():
    img = Image.new("RGB", (64, 64))
    img.paste((255, 255, 255), (0, 0, 32, 64))  # left half white
    flip = train_transform(image_size=64, scale=(1, 1), ratio=(1, 1), hflip_prob=1.0)
    keep = train_transform(image_size=64, scale=(1, 1), ratio=(1, 1), hflip_prob=0.0)
    assert flip(img)[0, 0, 0] < flip(img)[0, 0, -1]  # white moved to the right
    assert keep(img)[0, 0, 0] > keep(img)[0, 0, -1]


def test_lighting_adds_the_pca_offset_by_hand():
    from alexlab.data.torch_loader import IMAGENET_EIGVAL, IMAGENET_EIGVEC, Lighting

    image = torch.full((3, 4, 4), 0.5)
    torch.manual_seed(0)
    out = Lighting(std=0.1)(image)
    torch.manual_seed(0)
    alpha = torch.randn(3) * 0.1
    offset = [sum(IMAGENET_EIGVEC[c][k] * alpha[k].item() * IMAGENET_EIGVAL[k] for k in range(3))
              for c in range(3)]  # fmt: skip
    torch.testing.assert_close(out[:, 0, 0], 0.5 + torch.tensor(offset))
    assert torch.equal(out[:, 0, 0], out[:, 3, 3])  # one offset for the whole image
    with pytest.raises(ValueError, match="Lighting needs a"):
        Lighting()(torch.zeros(1, 3, 4, 4))


def test_paper_crop_takes_a_random_crop_of_the_central_square():
    img = Image.new("RGB", (400, 300), (10, 200, 30))
    out = train_transform(image_size=227, crop="paper", resize_size=256, hflip_prob=0.5)(img)
    assert out.shape == (3, 227, 227)
    with pytest.raises(ValueError, match="data.crop='ten'"):
        train_transform(image_size=224, crop="ten")
