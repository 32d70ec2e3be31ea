"""LARS: Layer-wise Adaptive Rate Scaling.

You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks", 2017,
https://arxiv.org/abs/1708.03888, Algorithm 1. Each layer (parameter tensor) gets a local lr

    local_lr = eta * ||w|| / (||g|| + beta * ||w||)

(eta: trust coefficient, beta: weight decay), and the update with momentum m and global lr
gamma_t is

    v <- m * v + gamma_t * local_lr * (g + beta * w)
    w <- w - v

The ratio is 1 when either norm is 0 (a fresh zero-initialised tensor, or no gradient signal).
``trust_clip=True`` is LARC's clipping (NVIDIA apex ``LARC(clip=True)``): the effective lr is
``min(gamma_t * local_lr, gamma_t)``. Parameter groups flagged ``lars_exclude`` (biases and norm
parameters, see ``param_groups.py``) skip the adaptation: plain SGD with momentum.

The step is vectorised with ``torch._foreach_*``: the number of kernel launches per group does
not grow with the number of layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from alexlab.optim.param_groups import LARS_EXCLUDE


class LARS(Optimizer):
    """LARS with momentum (the module docstring); the arguments are the ``optimizer.*`` settings
    of ``alexlab.config.schema.LARS``."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 0.0,
        trust_clip: bool = False,
    ) -> None:
        # ranges: the config schema (alexlab.config.schema.LARS), the one gate
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            trust_clip=trust_clip,
            **{LARS_EXCLUDE: False},
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            grads = [p.grad for p in params]
            # 1) local lr per tensor, all tensors at once: (n_tensors,)
            if group[LARS_EXCLUDE]:
                scales: list[torch.Tensor] | float = lr
            else:
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = group["trust_coefficient"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                trust = torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
                if group["trust_clip"]:
                    trust = torch.clamp(trust / lr, max=1.0)
                scales = list((trust * lr).unbind())
            # 2) d = lr * local_lr * (g + beta * w)
            d = torch._foreach_add(grads, params, alpha=wd) if wd else [g.clone() for g in grads]
            torch._foreach_mul_(d, scales)
            # 3) v = m * v + d;  w = w - v
            if momentum:
                for p in params:  # a new buffer starts at 0: the first step is v = d
                    if "momentum_buffer" not in self.state[p]:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                buffers = [self.state[p]["momentum_buffer"] for p in params]
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, d)
                d = buffers
            torch._foreach_sub_(params, d)
        return loss
