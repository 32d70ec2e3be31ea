"""Per-layer output shape, parameters and multiply-accumulates (MACs) of one forward pass.

The counts are torch's ``FlopCounterMode``: it counts convolutions and matrix products only
(no bias adds, norms, pools or activations, which are memory-bound), the convention behind
torchvision's published 0.714 GMACs ("GFLOPS") for AlexNet at 224x224. Its FLOPs are 2 x MACs
(a multiply and an add per weight and output position); this module reports MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    macs: int


@torch.no_grad()
def layer_summary(net: nn.Module, input_size: int) -> tuple[list[LayerRow], int]:
    """The rows (one per leaf module, in execution order) and the network's total MACs, for a
    single ``(1, 3, S, S)`` input. A leaf's MACs are the counter's growth across its forward."""
    rows: list[LayerRow] = []
    names = {m: n for n, m in net.named_modules()}
    counter = FlopCounterMode(display=False)
    before: dict[nn.Module, int] = {}

    def pre_hook(module: nn.Module, _inputs) -> None:
        before[module] = counter.get_total_flops()

    def hook(module: nn.Module, _inputs, out: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        macs = (counter.get_total_flops() - before.pop(module)) // 2
        rows.append(LayerRow(names[module], type(module).__name__, tuple(out.shape), params, macs))

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    handles += [m.register_forward_hook(hook) for m in leaves]
    was_training = net.training
    weight = next(net.parameters())  # its device and dtype (bfloat16 under bf16-true)
    try:
        net.eval()  # leave BatchNorm running statistics untouched
        # the Python forward, not the compiled call (model.compile=true): batch 1 would recompile
        # the training graph and teach it a dynamic batch size
        with counter:
            net.forward(weight.new_zeros(1, 3, input_size, input_size))
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return rows, counter.get_total_flops() // 2
