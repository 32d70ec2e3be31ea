"""Which parameters get weight decay (and, for LARS, layer-wise adaptation).

Biases and normalisation parameters (every tensor with ``ndim <= 1``) are excluded when
``exclude_bias_and_norm`` is on: decaying a BatchNorm scale towards 0 only fights the
normalisation, and You et al. 2017 (LARS) adapt the weights of each layer, not its biases.
"""

from __future__ import annotations

from torch import nn

# Extra key read by LARS: tensors in a group with this flag set see plain SGD with momentum.
LARS_EXCLUDE = "lars_exclude"


def param_groups(net: nn.Module, *, exclude_bias_and_norm: bool = True) -> list[dict]:
    """``[{"params": weights}, {"params": biases_and_norms, "weight_decay": 0.0, ...}]``, or one
    group with the optimizer's defaults when ``exclude_bias_and_norm=False``."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    if not exclude_bias_and_norm:
        return [{"params": trainable}]
    others = [p for p in trainable if p.ndim <= 1]
    groups = [{"params": [p for p in trainable if p.ndim > 1]}]
    if others:
        groups.append({"params": others, "weight_decay": 0.0, LARS_EXCLUDE: True})
    return groups
