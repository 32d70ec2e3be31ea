import csv
from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from alexlab.metric_names import all_metric_names, metric_name
from alexlab.models.alexnet import AlexNet
from alexlab.module import ClassificationModule


def tiny_module(**kwargs):
    net = AlexNet(num_classes=10, widths=(4, 8, 8, 8, 8), hidden=16, norm="bn", pool_size=1)
    return ClassificationModule(net, partial(torch.optim.SGD, lr=0.1), num_classes=10, **kwargs)


def test_metric_names_are_one_spelling():
    assert metric_name("val", "acc1") == "val/acc1"
    assert {"train/loss", "val/acc1", "val/acc5", "test/acc1"} <= set(all_metric_names())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_is_cross_entropy_with_label_smoothing(smoothing):
    module = tiny_module(label_smoothing=smoothing).eval()
    images, labels = torch.randn(6, 3, 64, 64), torch.randint(0, 10, (6,))
    expected = F.cross_entropy(module(images), labels, label_smoothing=smoothing)
    torch.testing.assert_close(module.criterion(module(images), labels), expected)


def test_topk_metrics_against_a_hand_count():
    module = tiny_module()
    logits = torch.tensor([[0.0, 9, 8, 7, 6, 5, 4, 3, 2, 1]] * 4)  # ranking: 1, 2, 3, 4, 5, ...
    labels = torch.tensor([1, 3, 6, 0])  # top-1 hit, top-5 hit, miss, miss (0 ranks last)
    result = module.val_metrics(logits, labels)
    assert result["val/acc1"].item() == pytest.approx(0.25)
    assert result["val/acc5"].item() == pytest.approx(0.5)


def test_hparams_are_plain_and_exclude_objects():
    module = tiny_module(label_smoothing=0.1)
    assert "net" not in module.hparams and "optimizer" not in module.hparams
    expected = {"num_classes": 10, "label_smoothing": 0.1, "exclude_bias_and_norm": True}
    assert dict(module.hparams) == expected


def test_train_epoch_metrics_match_torchmetrics_over_the_same_batches(tmp_path):
    """lr 0 and no dropout: the logits seen in training are net(batch) in train mode (batch
    statistics), so torchmetrics over the same batches is the reference."""
    torch.manual_seed(0)
    net = AlexNet(
        num_classes=10, widths=(4, 8, 8, 8, 8), hidden=16, norm="bn", pool_size=1, dropout=0.0
    )
    module = ClassificationModule(net, partial(torch.optim.SGD, lr=0.0), num_classes=10)
    batches = [(torch.randn(6, 3, 64, 64), torch.randint(0, 10, (6,))) for _ in range(4)]
    batches.append((torch.randn(3, 3, 64, 64), torch.randint(0, 10, (3,))))  # a short last batch
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=CSVLogger(tmp_path, name="log", version=0),
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))  # as they are

    net.train()
    with torch.no_grad():
        logits = torch.cat([net(x) for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    got = trainer.callback_metrics
    top1 = MulticlassAccuracy(10, top_k=1, average="micro")(logits, labels)
    top5 = MulticlassAccuracy(10, top_k=5, average="micro")(logits, labels)
    torch.testing.assert_close(got["train/acc1"], top1)
    torch.testing.assert_close(got["train/acc5"], top5)
    torch.testing.assert_close(got["train/loss_epoch"], F.cross_entropy(logits, labels))
    # step values reach the logger on its steps only (every log_every_n_steps=2 of 5 steps)
    rows = list(csv.DictReader((tmp_path / "log" / "version_0" / "metrics.csv").open()))
    assert sum(1 for r in rows if r.get("train/loss")) == 2
    assert sum(1 for r in rows if r.get("train/acc1")) == 1
