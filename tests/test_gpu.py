"""GPU settings on a machine without a GPU: the driver warning (simulated), SyncBatchNorm before
compile."""

import pytest
import torch
from torch import nn

import alexlab.gpu
from alexlab.gpu import sync_then_compile
from alexlab.train import train

DRIVER_FILE = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 14:37:44 UTC 2024\n"
    "GCC version:  gcc version 9.4.0 (Ubuntu 9.4.0-1ubuntu1~20.04.2)\n"
)


def test_auto_falling_back_to_the_cpu_names_the_nvidia_driver(train_cfg, tmp_path, monkeypatch):
    # a machine with an NVIDIA kernel module that torch cannot use (torch sees no CUDA device here)
    (tmp_path / "version").write_text(DRIVER_FILE)
    monkeypatch.setattr(alexlab.gpu, "NVIDIA_DRIVER_FILE", tmp_path / "version")
    assert not torch.cuda.is_available()
    with pytest.warns(
        UserWarning, match=r"training on the CPU, yet this machine has NVIDIA driver 470\.256\.02"
    ):
        train(train_cfg("trainer.accelerator=auto", "trainer.fast_dev_run=true"))


def test_no_warning_without_a_driver_or_when_the_cpu_is_asked_for(train_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(alexlab.gpu, "NVIDIA_DRIVER_FILE", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi either
    assert alexlab.gpu.nvidia_driver() is None
    (tmp_path / "version").write_text(DRIVER_FILE)
    monkeypatch.setattr(alexlab.gpu, "NVIDIA_DRIVER_FILE", tmp_path / "version")
    assert alexlab.gpu.nvidia_driver() == "470.256.02"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        import lightning as L

        trainer = L.Trainer(accelerator="cpu", logger=False)
        alexlab.gpu.warn_if_gpu_unused(trainer, "cpu")  # trainer=cpu: on purpose, no warning


def test_sync_batchnorm_is_converted_before_compile():
    graphs = []

    def backend(gm, example_inputs):  # counts what torch.compile traces, runs it as traced
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    reference.load_state_dict(net.state_dict())
    out = sync_then_compile(net, sync=True, compile=True, backend=backend)
    assert isinstance(out[1], nn.SyncBatchNorm)  # converted ...
    out.eval(), reference.eval()  # (one process: SyncBatchNorm normalises as BatchNorm does)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(out(x), reference(x), atol=1e-6)
    assert len(graphs) == 1  # ... and then compiled: the first call traced the converted net
