"""LARS against hand computations of You et al. 2017, Algorithm 1."""

import copy
import math

import pytest
import torch
from torch import nn

from alexlab.config import ConfigError, validate_section
from alexlab.optim.lars import LARS
from alexlab.optim.param_groups import param_groups


def one_param(values, grad):
    p = nn.Parameter(torch.tensor(values, dtype=torch.float64))
    p.grad = torch.tensor(grad, dtype=torch.float64)
    return p


def test_one_step_by_hand_without_momentum():
    # w = (3, 4): ||w|| = 5;  g = (0.6, 0.8): ||g|| = 1;  beta = 0.1, eta = 0.001, lr = 2
    p = one_param([3.0, 4.0], [0.6, 0.8])
    LARS([p], lr=2.0, momentum=0.0, weight_decay=0.1, trust_coefficient=0.001).step()
    local_lr = 0.001 * 5 / (1 + 0.1 * 5)  # = 1/300
    step = [2.0 * local_lr * (g + 0.1 * w) for w, g in ((3, 0.6), (4, 0.8))]  # (0.006, 0.008)
    torch.testing.assert_close(
        p.detach(), torch.tensor([3 - step[0], 4 - step[1]], dtype=torch.float64)
    )
    assert step == pytest.approx([0.006, 0.008])


def test_two_steps_by_hand_with_momentum():
    p = one_param([3.0, 4.0], [0.6, 0.8])
    opt = LARS([p], lr=2.0, momentum=0.9, weight_decay=0.0, trust_coefficient=0.01)
    w, v = [3.0, 4.0], [0.0, 0.0]
    for g in ([0.6, 0.8], [0.3, -0.4]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        local_lr = 0.01 * math.hypot(*w) / math.hypot(*g)
        v = [0.9 * vi + 2.0 * local_lr * gi for vi, gi in zip(v, g, strict=False)]
        w = [wi - vi for wi, vi in zip(w, v, strict=False)]
    torch.testing.assert_close(p.detach(), torch.tensor(w, dtype=torch.float64))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_excluded_group_is_plain_sgd(momentum):
    torch.manual_seed(0)
    lars_net, sgd_net = nn.Linear(4, 3), nn.Linear(4, 3)
    sgd_net.load_state_dict(lars_net.state_dict())
    groups = [{"params": list(lars_net.parameters()), "lars_exclude": True}]
    lars = LARS(groups, lr=0.5, momentum=momentum, weight_decay=0.01)
    sgd = torch.optim.SGD(sgd_net.parameters(), lr=0.5, momentum=momentum, weight_decay=0.01)
    x = torch.randn(8, 4)
    for _ in range(3):
        for net, opt in ((lars_net, lars), (sgd_net, sgd)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    for a, b in zip(lars_net.parameters(), sgd_net.parameters(), strict=False):
        torch.testing.assert_close(a, b)


def test_exclusions_from_param_groups():
    """Weights adapt, biases see plain SGD: one step by hand for each."""
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
        lin.bias.fill_(1.0)
    lin.weight.grad = torch.tensor([[0.6, 0.8]])
    lin.bias.grad = torch.tensor([0.5])
    LARS(param_groups(lin), lr=2.0, momentum=0.0, weight_decay=0.1).step()
    local_lr = 0.001 * 5 / (1 + 0.1 * 5)
    expected_w = torch.tensor([[3 - 2 * local_lr * (0.6 + 0.3), 4 - 2 * local_lr * (0.8 + 0.4)]])
    torch.testing.assert_close(lin.weight.detach(), expected_w)
    torch.testing.assert_close(lin.bias.detach(), torch.tensor([1 - 2.0 * 0.5]))  # no wd, no ratio


def test_zero_norm_parameter_uses_ratio_one():
    zero_w = one_param([0.0, 0.0], [1.0, 2.0])
    zero_g = one_param([1.0, 1.0], [0.0, 0.0])
    LARS([zero_w, zero_g], lr=0.1, momentum=0.0).step()
    torch.testing.assert_close(zero_w.detach(), torch.tensor([-0.1, -0.2], dtype=torch.float64))
    torch.testing.assert_close(zero_g.detach(), torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.isfinite(zero_w).all()


def test_larc_clip_caps_the_effective_lr_at_lr():
    # huge trust ratio (tiny gradient): without clip the step is lr * ratio * g, with clip lr * g
    p_clip, p_free = one_param([3.0, 4.0], [1e-6, 0.0]), one_param([3.0, 4.0], [1e-6, 0.0])
    LARS([p_clip], lr=0.1, momentum=0.0, trust_clip=True).step()
    LARS([p_free], lr=0.1, momentum=0.0).step()
    assert p_clip[0].item() == pytest.approx(3 - 0.1 * 1e-6)
    assert p_free[0].item() == pytest.approx(3 - 0.1 * (0.001 * 5 / 1e-6) * 1e-6)


def test_state_dict_round_trip_resumes_identically():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(16, 5)

    def run(net, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()

    opt = LARS(param_groups(net), lr=1.0, momentum=0.9, weight_decay=5e-4)
    run(net, opt, 2)
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    run(net, opt, 3)
    clone = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2))
    clone.load_state_dict(saved_net)
    clone_opt = LARS(param_groups(clone), lr=1.0)
    clone_opt.load_state_dict(saved_opt)
    run(clone, clone_opt, 3)
    for a, b in zip(net.parameters(), clone.parameters(), strict=False):
        torch.testing.assert_close(a, b)


def test_invalid_arguments():
    """The config schema is the one gate for LARS's arguments."""
    lars = {"_target_": "alexlab.optim.lars.LARS"}
    with pytest.raises(ConfigError, match="optimizer.lr=0 is not allowed: .* > 0"):
        validate_section("optimizer", {**lars, "lr": 0})
    with pytest.raises(ConfigError, match="optimizer.trust_coefficient=0 is not allowed"):
        validate_section("optimizer", {**lars, "lr": 1, "trust_coefficient": 0})


def test_large_lr_converges_with_lars_where_sgd_diverges():
    """Full-batch (1,797 digits) MLP at lr 20: SGD blows up, LARS (eta 0.001) keeps learning."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    y = torch.tensor(labels)

    def train(optimizer_cls, **kwargs):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        opt = optimizer_cls(param_groups(net), lr=20.0, momentum=0.9, **kwargs)
        first = nn.functional.cross_entropy(net(x), y).item()
        for _ in range(50):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
        return first, nn.functional.cross_entropy(net(x), y).item()

    first, lars_final = train(LARS)
    _, sgd_final = train(torch.optim.SGD)
    assert lars_final < 0.1 * first
    assert not math.isfinite(sgd_final) or sgd_final > first
