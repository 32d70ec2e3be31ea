"""`make bench` at a tiny size: every table is written, ratios are medians over their baseline."""

import re

from subproc import through_zygote

from benchmarks import bench_loaders
from benchmarks.bench import main


def rows(report: str, heading: str) -> list[tuple[str, float, float]]:
    """(measurement, median, ratio) of the markdown table after ``heading``."""
    table = report[report.index(heading) :].split("\n\n")[1]
    found = re.findall(r"^\| (.+?) \| (\d+) \| [\d, ]* \| ([\d.]+)x \|$", table, flags=re.M)
    return [(what, float(median), float(ratio)) for what, median, ratio in found]


def test_bench_writes_loader_training_and_overhead_tables(tmp_path, capsys, monkeypatch):
    # its measuring processes (python -c) fork from the tests' preloaded process: the rows, not
    # the start-up, are what this test checks
    monkeypatch.setattr(bench_loaders, "subprocess", through_zygote(code=True))
    out = tmp_path / "BENCH.md"
    out.write_text("# kept\n")
    main(
        [
            "--what",
            "data",
            "train",
            "overhead",
            "--runs",
            "1",
            "--warmup",
            "1",
            "--batches",
            "2",
            "--classes",
            "2",
            "--per-class",
            "3",
            "--cache",
            str(tmp_path),
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--models",
            "alexnet_bn",
            "--tiny-models",  # the rows, not a measurement: a full-size step takes seconds here
            "--image-size",
            "64",
            "--train-batches",
            "1",
            "--train-batch-size",
            "4",
            "--overhead-batch-sizes",
            "4",
            "--overhead-steps",
            "4",
            "--tree-files",
            "200",
            "--out",
            str(out),
        ]
    )
    report = out.read_text()
    assert report.startswith("# kept\n")  # appended, never overwritten
    assert "cores usable" in report  # the machine is named

    loaders = rows(report, "**Loaders.**")  # no baseline: this code alone, against the first row
    assert [w for w, _, _ in loaders] == [
        "torch (workers = 1)",
        "dali (threads = 1)",
        "dali (threads = 1, exact IDCT)",
    ]
    for _, median, ratio in loaders:
        assert median > 0 and abs(ratio - median / loaders[0][1]) < 0.1  # medians rounded
    assert "DALI decode only (cpu), 1 threads" in report
    assert "dali (200-file tree, seconds to the first batch; threads = 2)" in report

    training = rows(report, "**Training**")
    assert all(w.startswith("train alexnet_bn (tiny) @64: ") for w, _, _ in training)
    assert [w.split(": ")[1] for w, _, _ in training][:2] == [
        "synthetic (on device)",
        "dali loader",
    ]
    assert training[0][2] == 1.0

    overhead = rows(report, "**Framework overhead**")
    names = [w.split(",")[0] for w, _, _ in overhead]
    assert names == ["raw PyTorch loop", "bare LightningModule", "alexlab module"]
    raw = overhead[0][1]
    for _, median, ratio in overhead:  # ratios against the raw loop; the table rounds medians
        assert (
            abs(ratio * raw - median) <= 0.5 + 0.005 * raw + 0.5 * ratio
        )  # to units, ratios to 0.01
    assert report.removeprefix("# kept\n") in capsys.readouterr().out  # printed as appended


def test_raw_loop_runs_the_precision_asked_for():
    import argparse

    import torch

    from benchmarks.bench import _tiny_or_full, gpu_defaults, raw_rate

    seen = []
    for precision in ("32-true", "bf16-mixed"):
        net = _tiny_or_full("alexnet_bn", 10, tiny=True)
        net.classifier.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        batch = (torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,)))
        assert (
            raw_rate(
                net, batch, warmup=0, batches=1, device=torch.device("cpu"), precision=precision
            )
            > 0
        )
    assert seen == [torch.float32, torch.bfloat16]  # autocast, as Lightning's bf16-mixed

    # GPU-sized defaults on a GPU, CPU-sized here; what is given stays
    unset = dict(
        train_batch_size=None,
        train_warmup=None,
        train_batches=None,
        precision=None,
        channels_last=None,
        compile=None,
        overhead_warmup=None,
        overhead_steps=None,
        runs=None,
        workers=None,
    )
    cpu = gpu_defaults(argparse.Namespace(**unset), gpu=False)
    assert (cpu.train_batch_size, cpu.train_batches, cpu.precision) == (8, 4, "32-true")
    assert cpu.runs == 3 and len(cpu.workers) == 1  # `make bench` in minutes on a CPU
    given = gpu_defaults(argparse.Namespace(**unset | {"train_batches": 7}), gpu=False)
    assert given.train_batches == 7


def test_loaders_against_a_baseline_copy_of_the_code(tmp_path, monkeypatch):
    """`make bench-data ARGS="--baseline-src OLD/src"`: each version measured in its own
    processes (PYTHONPATH = its src), the versions interleaved; the ratio is this code's median
    over the baseline's. (The measuring process itself runs in the test above.)"""
    from pathlib import Path

    import alexlab
    from benchmarks import bench_loaders

    calls, rates = [], {"new": iter([10.0, 30.0, 20.0]), "old": iter([4.0, 5.0, 6.0])}
    this = Path(alexlab.__file__).resolve().parents[1]

    def fake_run(src, args):
        version = "new" if src == this else "old"
        calls.append(version)
        return [next(rates[version])]

    monkeypatch.setattr(bench_loaders, "_run", fake_run)
    (row,) = bench_loaders.bench_against(
        tmp_path,
        tmp_path / "old-src",
        configs=[("torch", 0, True)],
        batch_size=2,
        warmup=0,
        batches=2,
        runs=3,
    )
    assert calls == ["new", "old"] * 3  # interleaved
    assert row["what"] == "torch (workers = 0): this code / previous"
    assert (row["median"], row["baseline"], row["ratio"]) == (20.0, 5.0, 4.0)
    assert row["runs"] == [10.0, 30.0, 20.0] and row["baseline_runs"] == [4.0, 5.0, 6.0]


def test_loader_rows_get_a_tree_whose_epoch_covers_the_timed_steps(tmp_path):
    """At a GPU's batch size a small tree is a few steps per epoch, and every epoch starts a new
    loader: the rows read a tree of hard links instead, one epoch long."""
    from alexlab.data.datamodule import ImageDataModule
    from alexlab.data.fake_imagenet import write_fake_imagenet
    from alexlab.data.sources import FolderSource
    from benchmarks.bench import sized_tree

    root = write_fake_imagenet(tmp_path / "tree", classes=2, per_class=3, val_per_class=1)
    assert sized_tree(root, images=6) == root  # large enough already
    sized = sized_tree(root, images=16)  # 6 files, 3 times each
    assert sized_tree(root, images=16) == sized  # made once
    train = sorted((sized / "train").rglob("*.JPEG"))
    assert len(train) == 18 and len(list((sized / "val").rglob("*.JPEG"))) == 2
    originals = {f.stat().st_ino for f in (root / "train").rglob("*.JPEG")}
    assert {f.stat().st_ino for f in train} == originals  # the same bytes, no copies
    dm = ImageDataModule(
        root=sized,
        source=FolderSource,
        loader="torch",
        batch_size=4,
        num_workers=0,
        image_size=64,
        resize_size=64,
    )
    assert len(dm.train_dataloader()) == 4 and dm.num_classes == 2  # 16 images: 4 steps
