"""Speed switches: they change how fast, never what is computed."""

from functools import partial

import pytest
import torch

from alexlab.models.alexnet import build
from alexlab.module import ClassificationModule

TINY = dict(num_classes=10, widths=(8, 16, 16, 16, 16), hidden=32, norm="bn", dropout=0.0)


def train_step_loss(net, steps: int = 2) -> list[float]:
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow  # compiling forward and backward takes a minute on 2 CPU cores
def test_compiled_training_matches_eager():
    torch.manual_seed(1)
    eager = build(**TINY)
    torch.manual_seed(1)
    compiled = build(**TINY, compile=True)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints unchanged
    assert train_step_loss(compiled) == pytest.approx(train_step_loss(eager), rel=1e-4)


def test_channels_last_gives_the_same_outputs_and_keeps_nchw_semantics():
    torch.manual_seed(1)
    plain = build(**TINY).eval()
    torch.manual_seed(1)
    fast = build(**TINY, channels_last=True).eval()
    assert fast.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    module = ClassificationModule(fast, partial(torch.optim.SGD, lr=0.1), num_classes=10)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(module(x), plain(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["foreach", "fused"])
def test_foreach_and_fused_sgd_take_the_same_steps(train_cfg, kind):
    from alexlab.train import train

    plain = train(train_cfg("trainer.limit_train_batches=2"))
    fast = train(train_cfg("trainer.limit_train_batches=2", f"optimizer.{kind}=true"))
    assert fast["metrics"]["val/loss"] == pytest.approx(plain["metrics"]["val/loss"], rel=1e-5)


def test_debug_profile_runs_and_writes_a_trace(train_cfg, tmp_path):
    from alexlab.train import train

    cfg = train_cfg(
        "debug=profile",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        output_dir=tmp_path / "run",
    )
    train(cfg)
    assert list((tmp_path / "run" / "profile").glob("*.json")) or list(
        (tmp_path / "run" / "profile").glob("*.txt")
    )
