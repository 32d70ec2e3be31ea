"""The AlexNet family: the 2012 paper network, AlexNet-BN and torchvision's layout, as one class.

- ``norm="lrn"``: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
  Neural Networks", NeurIPS 2012 (https://papers.nips.cc/paper/4824), §3: five convolutions
  96-256-384-384-256, local response normalisation after conv1 and conv2 (§3.3), overlapping
  max-pooling 3/2 (§3.4), two 4096-unit hidden layers with dropout 0.5 (§4.2).
  ``groups=2`` reproduces the two-GPU towers: conv2, conv4 and conv5 only see the kernel maps
  on their own GPU (§3.2, Figure 2).
- ``norm="bn"``: AlexNet-BN as trained with LARS by You, Gitman & Ginsburg, "Large Batch Training
  of Convolutional Networks", 2017 (https://arxiv.org/abs/1708.03888): BatchNorm after every
  convolution, no LRN.
- ``norm="none"`` with ``widths=(64, 192, 384, 256, 256)``: torchvision's ``alexnet`` (the
  "one weird trick" layout, https://arxiv.org/abs/1404.5997). Module names match torchvision's,
  so its ``state_dict`` loads unchanged.

Input is 224x224 (conv1 padding 2, as torchvision) or 227x227 (padding 0: the size the paper's
arithmetic needs, 55x55 after conv1). ``AdaptiveAvgPool2d`` makes any other size work too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

Norm = Literal["lrn", "bn", "none"]
Init = Literal["paper", "default"]

# LRN hyper-parameters, Krizhevsky et al. 2012 §3.3: k=2, n=5, alpha=1e-4, beta=0.75.
# torch's LocalResponseNorm divides alpha by n, the paper does not, hence alpha * n here.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


class AlexNet(nn.Module):
    """The arguments are the ``model.*`` settings (the module docstring), each documented (type,
    range, default) once in ``alexlab.config.schema.Model``."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        widths: Sequence[int] = (96, 256, 384, 384, 256),
        hidden: int = 4096,
        dropout: float = 0.5,
        norm: Norm = "lrn",
        groups: int = 1,
        input_size: int = 224,
        pool_size: int = 6,
        init: Init = "paper",
    ) -> None:
        super().__init__()
        self.input_size = input_size
        c1, c2, c3, c4, c5 = widths
        conv1_padding = 0 if input_size == 227 else 2

        def conv(cin: int, cout: int, k: int, *, stride: int = 1, pad: int, g: int = 1) -> list:
            bn = [nn.BatchNorm2d(cout)] if norm == "bn" else []
            c = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=g, bias=not bn)
            return [c, *bn, nn.ReLU(inplace=True)]

        def lrn() -> list:
            lrn = nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)
            return [lrn] if norm == "lrn" else []

        pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2)  # noqa: E731 (overlapping pool, §3.4)
        self.features = nn.Sequential(
            *conv(3, c1, 11, stride=4, pad=conv1_padding),
            *lrn(),
            pool(),  # (B, c1, 27, 27)
            *conv(c1, c2, 5, pad=2, g=groups),
            *lrn(),
            pool(),  # (B, c2, 13, 13)
            *conv(c2, c3, 3, pad=1),  # conv3 sees both towers (§3.2)
            *conv(c3, c4, 3, pad=1, g=groups),
            *conv(c4, c5, 3, pad=1, g=groups),
            pool(),  # (B, c5, 6, 6)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        if init == "paper":
            self._paper_init()

    @torch.no_grad()
    def _paper_init(self) -> None:
        """Krizhevsky et al. 2012 §5: N(0, 0.01) weights; bias 1 in conv2, conv4, conv5 and the
        hidden FC layers ("accelerates the early stages of learning by providing the ReLUs with
        positive inputs"), 0 in conv1, conv3 and the output layer."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        ones = {convs[1], convs[3], convs[4], linears[0], linears[1]}
        for m in (*convs, *linears):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            if m.bias is not None:
                nn.init.constant_(m.bias, 1.0 if m in ones else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, H, W) -> features (B, c5, 6, 6) at 224/227 -> (B, c5 * 36) -> (B, num_classes)
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build(
    *, weights: str | None = None, channels_last: bool = False, compile: bool = False, **kwargs
) -> AlexNet:
    """``AlexNet(**kwargs)``; then ``weights``, a plain ``state_dict`` file (e.g. torchvision's
    ``alexnet-owt-7be5be79.pth``), loaded with ``weights_only=True``; ``channels_last`` weights
    (NHWC, what cuDNN's tensor cores prefer); ``compile`` in place (``nn.Module.compile``), so
    parameter names and checkpoints stay those of the eager network."""
    net = AlexNet(**kwargs)
    if weights is not None:
        try:
            state = torch.load(Path(weights).expanduser(), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"model.weights={weights}: no such file") from None
        net.load_state_dict(state)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile:
        net.compile()
    return net
