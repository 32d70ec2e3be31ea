import torch

from alexlab.data.synthetic import SyntheticDataModule


def test_same_batch_every_step_on_the_device():
    loader = SyntheticDataModule(
        num_classes=7, batch_size=4, image_size=64, steps_per_epoch=3
    ).train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    images, labels = batches[0]
    assert images.shape == (4, 3, 64, 64) and labels.dtype == torch.int64 and labels.max() < 7
    assert all(b[0] is images for b in batches)  # made once, no per-step work


def test_training_on_synthetic_data(train_cfg):
    from alexlab.train import train

    summary = train(
        train_cfg(
            "data=synthetic", "data.steps_per_epoch=3", "data.val_steps=1", "data.num_classes=10"
        )
    )
    assert summary["global_step"] == 3
