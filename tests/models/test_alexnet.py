import pytest
import torch
import torchvision
from torch import nn

from alexlab.config import ConfigError, validate_section
from alexlab.config.schema import MIN_IMAGE_SIZE
from alexlab.models.alexnet import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, AlexNet, build
from alexlab.models.summary import layer_summary

TV_WIDTHS = (64, 192, 384, 256, 256)
VARIANTS = {
    "alexnet": dict(norm="lrn", init="paper"),
    "alexnet_groups2": dict(norm="lrn", groups=2, init="paper"),
    "alexnet_bn": dict(norm="bn"),
    "alexnet_tv": dict(norm="none", widths=TV_WIDTHS),
}


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("size", [224, 227])
@pytest.mark.parametrize("variant", VARIANTS)
def test_full_size_shapes(variant, size):
    net = AlexNet(input_size=size, **VARIANTS[variant]).eval()
    with torch.no_grad():
        features = net.features(torch.randn(2, 3, size, size))
        logits = net(torch.randn(2, 3, size, size))
    assert features.shape[2:] == (6, 6)  # the paper's 6x6 maps before the classifier
    assert logits.shape == (2, 1000)


def test_conv1_output_is_55_for_both_input_sizes():
    for size in (224, 227):
        rows, _ = layer_summary(AlexNet(input_size=size), size)
        assert rows[0].out_shape == (1, 96, 55, 55)


@pytest.mark.parametrize(("groups", "expected"), [(2, 60_965_224), (1, 62_378_344)])
def test_paper_parameter_counts(groups, expected):
    assert n_params(AlexNet(groups=groups)) == expected


def test_groups2_splits_conv2_conv4_conv5_only():
    convs = [m for m in AlexNet(groups=2).features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert convs[1].weight.shape == (256, 48, 5, 5)  # each tower sees 48 of conv1's 96 maps


def test_torchvision_state_dict_loads_and_outputs_match():
    reference = torchvision.models.alexnet(weights=None).eval()
    ours = AlexNet(norm="none", widths=TV_WIDTHS).eval()
    ours.load_state_dict(reference.state_dict())  # strict: every key and shape matches
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_torchvision_macs_figure():
    # torchvision publishes 0.714 GMACs ("_ops") for its AlexNet at 224x224
    published = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["_ops"]
    net = AlexNet(norm="none", widths=TV_WIDTHS)
    rows, macs = layer_summary(net, 224)
    assert round(macs / 1e9, 3) == published
    # conv1 by hand: 64 maps x 55 x 55 positions x (3 x 11 x 11) weights each
    assert rows[0].macs == 64 * 55 * 55 * 363
    assert sum(r.macs for r in rows) == macs  # every MAC belongs to one layer's row
    assert {r.kind for r in rows if r.macs} == {"Conv2d", "Linear"}


def test_lrn_matches_the_paper_formula():
    """b = a / (k + alpha * sum_{j in window of n} a_j^2) ** beta
    (Krizhevsky et al. 2012, §3.3)."""
    net = AlexNet(norm="lrn")
    lrn = next(m for m in net.features if isinstance(m, nn.LocalResponseNorm))
    a = torch.randn(1, 12, 3, 3)
    expected = torch.empty_like(a)
    channels = a.shape[1]
    for i in range(channels):
        lo, hi = max(0, i - LRN_SIZE // 2), min(channels - 1, i + LRN_SIZE // 2)
        denom = (LRN_K + LRN_ALPHA * (a[:, lo : hi + 1] ** 2).sum(1)) ** LRN_BETA
        expected[:, i] = a[:, i] / denom
    torch.testing.assert_close(lrn(a), expected)


def test_paper_init():
    net = AlexNet(init="paper", groups=2)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [c.bias.unique().tolist() for c in convs] == [[0.0], [1.0], [0.0], [1.0], [1.0]]
    assert [f.bias.unique().tolist() for f in fcs] == [[1.0], [1.0], [0.0]]
    assert fcs[0].weight.std().item() == pytest.approx(0.01, rel=0.01)
    assert fcs[0].weight.mean().abs().item() < 1e-4


def test_bn_variant_has_batchnorm_after_every_conv_and_no_lrn():
    kinds = [type(m) for m in AlexNet(norm="bn").features]
    assert nn.LocalResponseNorm not in kinds
    conv_positions = [i for i, k in enumerate(kinds) if k is nn.Conv2d]
    assert len(conv_positions) == 5
    assert all(kinds[i + 1] is nn.BatchNorm2d for i in conv_positions)


def test_tiny_config_forward_backward():
    net = AlexNet(num_classes=7, widths=(8, 16, 16, 16, 16), hidden=32, norm="bn", pool_size=2)
    x = torch.randn(4, 3, 64, 64)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 6]))
    loss.backward()
    assert net(x).shape == (4, 7)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(widths=(1, 2, 3)), "widths"),
        (dict(norm="gn"), "norm"),
        (dict(groups=3), "groups"),
        (dict(init="xavier"), "init"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, key):
    """The config schema is the one gate for the constructor's arguments."""
    with pytest.raises(ConfigError, match=f"model.{key}=.* is not allowed"):
        validate_section("model", kwargs)


def test_build_loads_a_weight_file_safely(tmp_path, monkeypatch):
    reference = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    net = build(weights=str(path), norm="none", widths=TV_WIDTHS)
    torch.testing.assert_close(net.classifier[6].weight, reference.classifier[6].weight)
    # as model.weights=~/alexnet.pth too, which the config rule accepts (it expands ~)
    monkeypatch.setenv("HOME", str(tmp_path))
    net = build(weights="~/alexnet.pth", norm="none", widths=TV_WIDTHS)
    torch.testing.assert_close(net.classifier[6].weight, reference.classifier[6].weight)
    with pytest.raises(ValueError, match="model.weights"):
        build(weights=str(tmp_path / "missing.pth"))


def test_the_smallest_image_size_is_the_schemas():
    """``data.image_size`` >= 63 in the schema: AlexNet's last feature map is 1x1 at 63 px, and
    its three 3/2 max-pools leave nothing at 62."""
    features = AlexNet(widths=(4, 8, 8, 8, 8), hidden=8, norm="none").features
    assert features(torch.zeros(1, 3, MIN_IMAGE_SIZE, MIN_IMAGE_SIZE)).shape[-2:] == (1, 1)
    with pytest.raises(RuntimeError):
        features(torch.zeros(1, 3, MIN_IMAGE_SIZE - 1, MIN_IMAGE_SIZE - 1))
