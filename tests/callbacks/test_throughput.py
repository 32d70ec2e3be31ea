from __future__ import annotations

import csv
import time
from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from alexlab.callbacks.throughput import TrainThroughput
from alexlab.models.alexnet import AlexNet
from alexlab.module import ClassificationModule


class Sleep(L.Callback):
    """Makes each train step take at least ``train`` s and each val batch ``val`` s; with a
    ``clock``, exactly that long on the clock, which moves only here."""

    def __init__(self, train: float = 0.0, val: float = 0.0, clock: Clock | None = None) -> None:
        self.train, self.val, self.clock = train, val, clock

    def _wait(self, seconds: float) -> None:
        if self.clock is None:
            time.sleep(seconds)
        else:
            self.clock.now += seconds

    def on_train_batch_end(self, *args) -> None:
        self._wait(self.train)

    def on_validation_batch_end(self, *args) -> None:
        self._wait(self.val)


class Clock:
    """A ``time`` module for the callback whose ``perf_counter`` moves only when told."""

    now = 0.0

    def perf_counter(self) -> float:
        return self.now


def fit(
    tmp_path, *, accumulate=1, flops=None, every=2, epochs=1, steps=12, max_steps=-1, sleep=None
) -> list[dict]:
    torch.manual_seed(0)
    net = AlexNet(num_classes=10, widths=(4, 8, 8, 8, 8), hidden=16, norm="bn", pool_size=1)
    module = ClassificationModule(net, partial(torch.optim.SGD, lr=0.01), num_classes=10)
    if flops:
        module.flops_per_batch = flops
    batches = [(torch.randn(3, 3, 64, 64), torch.randint(0, 10, (3,))) for _ in range(steps)]
    loader = DataLoader(batches, batch_size=None)  # the batches as they are
    trainer = L.Trainer(
        max_epochs=epochs,
        max_steps=max_steps,
        accelerator="cpu",
        log_every_n_steps=every,
        accumulate_grad_batches=accumulate,
        num_sanity_val_steps=0,
        limit_val_batches=2,
        callbacks=[sleep or Sleep(), TrainThroughput()],  # sleeps count in the step
        logger=CSVLogger(tmp_path, name="log", version=0),
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader if sleep else None)
    rows = csv.DictReader((tmp_path / "log" / "version_0" / "metrics.csv").open())
    return [r for r in rows if r.get("train/samples")]


def test_logs_on_the_logger_steps_with_counts_and_rates(tmp_path):
    rows = fit(tmp_path)
    # 12 steps of 3 images, logged at steps 2, 4, ..., 12
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert [int(float(r["train/samples"])) for r in rows] == [6, 12, 18, 24, 30, 36]
    times = [float(r["train/time"]) for r in rows]
    assert times == sorted(times) and times[0] > 0
    rates = [float(r["train/device/samples_per_sec"]) for r in rows[1:]]  # window of 2 logs
    for prev, row, rate in zip(rows[:-1], rows[1:], rates, strict=True):  # 6 images per interval
        interval = float(row["train/time"]) - float(prev["train/time"])
        assert abs(rate - 6 / interval) < 1e-6 * rate


def test_counts_every_micro_batch_and_logs_per_optimizer_step(tmp_path):
    rows = fit(tmp_path, accumulate=3, flops=1000)  # 4 optimizer steps: logged at 2 and 4
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert [int(float(r["train/samples"])) for r in rows] == [18, 36]
    assert [int(float(r["train/batches"])) for r in rows] == [6, 12]
    rate = float(rows[1]["train/device/flops_per_sec"])
    interval = float(rows[1]["train/time"]) - float(rows[0]["train/time"])
    assert abs(rate - 6 * 1000 / interval) < 1e-6 * rate  # 6 batches' FLOPs in the interval


def test_train_time_counts_every_step_and_leaves_validation_out(tmp_path, monkeypatch):
    # 2 epochs of 5 steps of 0.1 s, logged every 3 steps, stopped at step 9 (so epoch 2 ends
    # without a validation); the validation of epoch 1 takes 2 x 1.5 s. Steps 4-5 run between
    # the last log of epoch 1 and its validation: they must count. The callback reads a clock
    # that moves only by those durations, so the train time is exact whatever the machine's load.
    clock = Clock()
    monkeypatch.setattr("alexlab.callbacks.throughput.time", clock)
    sleep = Sleep(train=0.1, val=1.5, clock=clock)
    rows = fit(tmp_path, every=3, epochs=2, steps=5, max_steps=9, sleep=sleep)
    assert [int(r["step"]) for r in rows] == [3, 6, 9]
    assert [float(r["train/time"]) for r in rows] == pytest.approx([0.3, 0.6, 0.9])
    assert clock.now == pytest.approx(0.9 + 2 * 1.5)  # the validation did take its 3 s


def test_mfu_is_read_against_the_peak_of_the_precision_in_use():
    from lightning.fabric.utilities.throughput import _CUDA_FLOPS

    from alexlab.callbacks.throughput import peak_dtype

    assert peak_dtype("bf16-mixed", tf32=True) is torch.bfloat16
    assert peak_dtype("16-mixed", tf32=False) is torch.float16
    assert peak_dtype("32-true", tf32=True) == "tfloat32"  # cuDNN convolutions on Ampere+
    assert peak_dtype("32-true", tf32=False) is torch.float32  # the CPU, pre-Ampere GPUs
    h100 = _CUDA_FLOPS["h100 sxm"]  # the peaks these keys select differ: bf16 > TF32 > FP32
    assert h100[peak_dtype("bf16-mixed", tf32=True)] > h100["tfloat32"] > h100[torch.float32]
