"""GPU settings on a machine without a GPU: the driver warning (simulated), SyncBatchNorm before
compile, batches in the dtype of ``*-true`` precision weights."""

import os

import pytest
import torch
from probe import fit
from torch import nn

import alexlab.gpu
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import DigitsSource
from alexlab.gpu import sync_then_compile
from alexlab.run.checkpoint import open_checkpoint
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


@pytest.mark.parametrize("data", ["digits", "cifar10"])
def test_bf16_true_trains_with_bfloat16_batches(train_cfg, data, request):
    # Lightning casts a batch before its transfer; the batch normalised on the device after it
    # stayed float32 and met bfloat16 weights at the first convolution (a crash on any device)
    extra = [f"data.root={request.getfixturevalue('cifar_root')}"] if data == "cifar10" else []
    summary = train(train_cfg(f"data={data}", *extra, "trainer.precision=bf16-true"))
    assert summary["global_step"] == 3
    assert 0 <= summary["metrics"]["val/acc1"] <= 1
    weights = open_checkpoint(summary["last_ckpt"], key="last.ckpt").state_dict
    net = {v.dtype for k, v in weights.items() if k.startswith("net.") and v.is_floating_point()}
    assert net == {torch.bfloat16}


@pytest.mark.parametrize("for_gpu", [None, True], ids=["normalised-by-loader", "uint8-as-on-gpu"])
@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16-true", torch.bfloat16), ("bf16-mixed", torch.float32)]
)
def test_batches_reach_the_module_in_the_precisions_input_dtype(
    cache_dir, for_gpu, precision, dtype
):
    """Both paths (the CPU's, normalised by the loader; the GPU's, uint8 normalised after the
    copy) give the dtype Lightning's precision plugin gives inputs, with the float32 values."""

    def batches(**trainer):
        dm = ImageDataModule(
            root=cache_dir,
            source=DigitsSource,
            loader="torch",
            num_workers=0,
            batch_size=8,
            image_size=64,
            resize_size=64,
            pin_memory=False,
            normalise_on_device=for_gpu,
            hflip_prob=0.0,
            scale=(1.0, 1.0),
            ratio=(1.0, 1.0),
        )
        probe = fit(dm, limit_train_batches=2, limit_val_batches=1, **trainer)
        return [x for _, x, _ in probe.train_batches]

    got, reference = batches(precision=precision), batches(precision="32-true")
    assert [x.dtype for x in got] == [dtype, dtype]
    for x, ref in zip(got, reference, strict=True):
        torch.testing.assert_close(x, ref.to(dtype))


def test_each_process_compiles_its_copy_once(tmp_path):
    """What ``ddp_spawn`` does, in one process: the module and the callback pickled to a child
    (the copy has lost its compiled call); ``setup`` compiles each network once."""
    import pickle
    from functools import partial

    from compile_log import PidLoggingBackend

    from alexlab.gpu import PerProcessSettings
    from alexlab.module import ClassificationModule

    backend = PidLoggingBackend(tmp_path / "compiles")
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    module = ClassificationModule(net, partial(torch.optim.SGD, lr=0.01), num_classes=3)
    settings = PerProcessSettings(compile=True, backend=backend)
    x = torch.randn(2, 3, 8, 8)
    torch._dynamo.reset()
    child_module, child_settings = pickle.loads(pickle.dumps((module, settings)))
    for _ in ("fit", "validate"):  # setup runs again for the final validate: no second compile
        settings.setup(None, module, "fit")
        module(x)
    assert len(backend.pids()) == 1
    child_module(x)
    assert len(backend.pids()) == 1  # the pickled copy runs uncompiled ...
    child_settings.setup(None, child_module, "fit")
    child_module(x)
    assert len(backend.pids()) == 2  # ... until its own setup compiles it


@pytest.mark.slow  # a spawned process: 45 s on 2 busy cores; the fast test above: the same logic
def test_ddp_spawn_children_compile_their_own_copy(cache_dir, tmp_path):
    """``nn.Module.__getstate__`` drops the compiled call when the module is pickled to
    ``ddp_spawn``'s children: ``PerProcessSettings`` compiles in each process's ``setup``."""
    from functools import partial

    import lightning as L
    from compile_log import PidLoggingBackend

    from alexlab.gpu import PerProcessSettings
    from alexlab.models.alexnet import build
    from alexlab.module import ClassificationModule

    backend = PidLoggingBackend(tmp_path / "compiles")
    net = build(num_classes=10, widths=(8, 16, 16, 16, 16), hidden=32, norm="bn", dropout=0.0)
    module = ClassificationModule(net, partial(torch.optim.SGD, lr=0.01), num_classes=10)
    dm = ImageDataModule(
        root=cache_dir,
        source=DigitsSource,
        loader="torch",
        num_workers=0,
        batch_size=8,
        image_size=64,
        resize_size=64,
        pin_memory=False,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        strategy="ddp_spawn",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[PerProcessSettings(compile=True, backend=backend)],
    )
    trainer.fit(module, datamodule=dm)
    pids = backend.pids()
    assert pids and os.getpid() not in pids  # compiled where it trained: in the spawned child
    assert len(set(pids)) == 1


def test_dali_memory_padding_keeps_nvidias_total_however_many_threads():
    """nvJPEG's buffers are preallocated per thread (one device, two pinned host buffers):
    NVIDIA's per-thread values up to their 5 threads, their 5-thread total beyond."""
    from nvidia.dali import fn, pipeline_def

    from alexlab.data import dali

    seen = {}

    @pipeline_def
    def define(threads: int):
        seen[threads] = dali._decoder(True, 0.65)  # what the mixed decoder is given
        return fn.random.uniform(range=(0.0, 1.0))

    for threads in (2, 5, 16, 28):
        define(threads, batch_size=1, num_threads=threads, device_id=None).build()
    full = dict(device_memory_padding=211_025_920, host_memory_padding=140_544_512)
    assert seen[2] == seen[5] and {k: seen[5][k] for k in full} == full
    for threads in (16, 28):
        assert seen[threads]["hw_decoder_load"] == 0.65
        device = threads * seen[threads]["device_memory_padding"]
        pinned = threads * 2 * seen[threads]["host_memory_padding"]
        assert 5 * full["device_memory_padding"] - threads <= device <= 5 * 211_025_920
        assert 5 * 2 * full["host_memory_padding"] - 2 * threads <= pinned <= 10 * 140_544_512


def test_default_dali_threads_share_the_cores_among_the_devices_the_run_uses(cache_dir):
    import lightning as L

    from alexlab.data.datamodule import default_dali_threads

    cores = len(os.sched_getaffinity(0))
    dm = ImageDataModule(root=cache_dir, source=DigitsSource, loader="torch")
    assert dm.dali_threads == default_dali_threads() == cores  # no trainer yet: one process
    for devices in (1, 2):  # (CPU processes here; on a GPU machine: the GPUs used, not visible)
        dm.trainer = L.Trainer(
            accelerator="cpu",
            devices=devices,
            logger=False,
            strategy="ddp" if devices > 1 else "auto",
        )
        assert dm.dali_threads == max(1, cores // devices)
    given = ImageDataModule(root=cache_dir, source=DigitsSource, loader="torch", dali_threads=3)
    given.trainer = dm.trainer
    assert given.dali_threads == 3


@pytest.mark.parametrize(
    ("name", "bf16", "tf32"),
    [("NVIDIA H200", 989.5e12, 494.5e12), ("NVIDIA H200 NVL", 835.5e12, 417.5e12)],
)
def test_mfu_has_a_peak_on_an_h200(monkeypatch, name, bf16, tf32):
    """Lightning 2.6 looks for "sxm1"/"nvl1" in the name torch gives (simulated here): no MFU
    on an H200. alexlab's peaks: NVIDIA's datasheet, dense (half the sparse tensor figures)."""
    from lightning.fabric.utilities.throughput import get_available_flops

    from alexlab.callbacks.throughput import peak_dtype, peak_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    cuda = torch.device("cuda", 0)
    with pytest.warns(UserWarning, match="FLOPs not found"):
        assert get_available_flops(cuda, torch.bfloat16) is None
    assert peak_flops(cuda, peak_dtype("bf16-mixed", tf32=True)) == bf16
    assert peak_flops(cuda, peak_dtype("32-true", tf32=True)) == tf32
    assert peak_flops(cuda, peak_dtype("32-true", tf32=False)) < tf32 / 5  # FP32, no tensor cores
