"""Per-layer output shape, parameters and multiply-accumulates (MACs) of one forward pass.

MACs count convolutions and linear layers only, the convention behind torchvision's published
0.714 GMACs ("GFLOPS") for AlexNet at 224x224; norms, pools and activations are memory-bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    macs: int


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        return out.numel() * per_output  # out: (1, C_out, H_out, W_out)
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


@torch.no_grad()
def layer_summary(net: nn.Module, input_size: int) -> list[LayerRow]:
    """One row per leaf module, in execution order, for a single ``(1, 3, S, S)`` input."""
    rows: list[LayerRow] = []
    names = {m: n for n, m in net.named_modules()}

    def hook(module: nn.Module, _inputs, out: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(
            LayerRow(
                names[module], type(module).__name__, tuple(out.shape), params, _macs(module, out)
            )
        )

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = net.training
    weight = next(net.parameters())  # its device and dtype (bfloat16 under bf16-true)
    try:
        net.eval()  # leave BatchNorm running statistics untouched
        # the Python forward, not the compiled call (model.compile=true): batch 1 would recompile
        # the training graph and teach it a dynamic batch size
        net.forward(
            torch.zeros(1, 3, input_size, input_size, device=weight.device, dtype=weight.dtype)
        )
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return rows


def total_macs(net: nn.Module, input_size: int) -> int:
    return sum(r.macs for r in layer_summary(net, input_size))
