import pickle

import pytest
import torch

from alexlab.config import ConfigError
from alexlab.data.augment import Augment, OnDevice
from alexlab.data.cifar import (
    CIFAR_MEAN,
    CIFAR_STD,
    CIFAR10DataModule,
    augment_on_device,
    read_batch,
)


def test_reads_the_standard_batches(cifar_root):
    dm = CIFAR10DataModule(root=cifar_root, batch_size=8)
    images, labels = dm.splits["train"]
    assert images.shape == (100, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert dm.splits["val"][0].shape == (20, 3, 32, 32)
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape == (8, 3, 32, 32)


def test_augmentation_by_hand():
    images = torch.full((2, 3, 32, 32), 51, dtype=torch.uint8)  # 51 / 255 = 0.2
    images[1, :, :, :16] = 255  # left half white
    normalize = OnDevice(Augment(mean=CIFAR_MEAN, std=CIFAR_STD))
    out = augment_on_device(images, image_size=227, train=True, hflip_prob=1.0, normalize=normalize)
    assert out.shape == (2, 3, 227, 227)
    expected = (0.2 - torch.tensor(CIFAR_MEAN)) / torch.tensor(CIFAR_STD)
    torch.testing.assert_close(out[0, :, 100, 100], expected, rtol=0, atol=1e-5)
    assert out[1, 0, 100, 0] < out[1, 0, 100, -1]  # flipped: white now on the right
    kept = augment_on_device(
        images, image_size=227, train=False, hflip_prob=1.0, normalize=normalize
    )
    assert kept[1, 0, 100, 0] > kept[1, 0, 100, -1]  # no flip outside training


def test_a_tampered_batch_file_cannot_run_code(tmp_path):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({b"data": print}, f)  # any callable reference is refused
    with pytest.raises(ConfigError, match="forbidden object builtins.print"):
        read_batch(path)


def test_missing_files_name_the_key(tmp_path, cifar_root):
    with pytest.raises(ConfigError, match="data.root=.*no such directory"):
        CIFAR10DataModule(root=tmp_path)
    (cifar_root / "cifar-10-batches-py" / "test_batch").rename(tmp_path / "moved")
    try:
        with pytest.raises(ConfigError, match="lacks test_batch"):
            CIFAR10DataModule(root=cifar_root)
    finally:
        (tmp_path / "moved").rename(cifar_root / "cifar-10-batches-py" / "test_batch")


def test_training_end_to_end(train_cfg, cifar_root):
    from alexlab.train import train

    summary = train(train_cfg("data=cifar10", f"data.root={cifar_root}"))
    assert summary["global_step"] == 3 and 0 <= summary["metrics"]["val/acc1"] <= 1
