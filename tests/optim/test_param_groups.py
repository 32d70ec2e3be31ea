import torch

from alexlab.models.alexnet import AlexNet
from alexlab.optim.param_groups import LARS_EXCLUDE, param_groups


def tiny():
    return AlexNet(num_classes=3, widths=(4, 8, 8, 8, 8), hidden=8, norm="bn", pool_size=1)


def test_biases_and_norm_params_get_no_weight_decay():
    net = tiny()
    decay, no_decay = param_groups(net)
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0 and no_decay[LARS_EXCLUDE] is True
    bn_and_bias = {id(p) for n, p in net.named_parameters() if n.endswith("bias") or ".1." in n}
    assert {id(p) for p in no_decay["params"]} <= bn_and_bias | {
        id(m.weight) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)
    }
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))


def test_switch_off_gives_one_group():
    assert len(param_groups(tiny(), exclude_bias_and_norm=False)) == 1


def test_sgd_decays_weights_but_not_biases():
    lin = torch.nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(1.0)
    opt = torch.optim.SGD(param_groups(lin), lr=0.1, weight_decay=0.5)
    for p in lin.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(lin.weight, torch.full((2, 2), 1 - 0.1 * 0.5))  # decayed
    torch.testing.assert_close(lin.bias, torch.ones(2))  # untouched
