from functools import partial

import pytest
import torch
import torch.nn.functional as F

from alexlab.models.alexnet import AlexNet
from alexlab.module import ClassificationModule, all_metric_names, metric_name


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
    module = tiny_module(run_config={"model": {"norm": "bn"}})
    assert "net" not in module.hparams and "optimizer" not in module.hparams
    assert module.hparams.run_config == {"model": {"norm": "bn"}}
