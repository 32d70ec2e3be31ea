"""Callbacks that run the network at other batch sizes never recompile the compiled training
graph (``model.compile=true``): each compile is counted by a custom ``torch.compile`` backend."""

import torch

from alexlab.models.alexnet import build
from alexlab.models.summary import layer_summary
from alexlab.module import ClassificationModule

TINY = dict(num_classes=10, widths=(8, 16, 16, 16, 16), hidden=32, norm="bn", dropout=0.0)


class CountingBackend:
    """A torch.compile backend that runs the traced graph as is and counts the compiles."""

    def __init__(self) -> None:
        self.compiles = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs):
        self.compiles += 1
        return gm.forward


def test_summary_and_image_predictions_do_not_recompile():
    torch._dynamo.reset()
    backend = CountingBackend()
    net = build(**TINY)
    net.compile(backend=backend)  # what model.compile=true does, with a counting backend
    module = ClassificationModule(net, num_classes=10)
    x = torch.randn(16, 3, 64, 64)
    module(x).sum().backward()  # the training graph, at the training batch size
    assert backend.compiles == 1
    rows, _ = layer_summary(net, 64)  # LayerSummary: batch 1
    assert rows[0].out_shape[0] == 1 and sum(r.macs for r in rows) > 0
    reference = build(**TINY)  # the same weights and statistics, never compiled
    reference.load_state_dict(net.state_dict())
    module.eval(), reference.eval()
    with torch.no_grad():
        preds = module.net.forward(x[:8])  # RunImages: 8 validation images
    assert torch.allclose(preds, reference(x[:8]), atol=1e-6)
    module.train()
    module(x).sum().backward()  # training goes on at batch 16
    assert backend.compiles == 1
