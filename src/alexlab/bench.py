"""``python -m alexlab.bench``: loader throughput, side by side, as ratios.

Each figure is the median of ``--runs`` timed runs after ``--warmup`` batches, all in one
invocation on the same cores, so the ratio compares like with like. The table is printed and
appended to BENCHMARKS.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import time
from pathlib import Path

import lightning as L
import torch

from alexlab import bench_loaders
from alexlab.data import dali
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.fake_imagenet import write_fake_imagenet
from alexlab.data.sources import FolderSource
from alexlab.data.synthetic import SyntheticDataModule
from alexlab.module import ClassificationModule


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    dali_version = "not installed"
    if dali.DALI_AVAILABLE:
        import nvidia.dali

        dali_version = nvidia.dali.__version__
    return (f"{cpu}, {cores} cores usable, {gpu}; torch {torch.__version__}, "
            f"DALI {dali_version}, Python {platform.python_version()}")  # fmt: skip


class _StepTimer(L.Callback):
    """Wall time from the start of optimizer step ``warmup`` to the end of training. The GPU is
    synchronised only there, as in ``raw_rate``: a sync per step would time a different loop."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.images = warmup, None, None, 0

    @staticmethod
    def _sync(trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self._sync(trainer)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.images += batch[0].shape[0]

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / (self.end - self.start)


def _tiny_or_full(model: str, num_classes: int, tiny: bool):
    from alexlab.models.alexnet import build

    norm = "bn" if model == "alexnet_bn" else "lrn"
    extra = dict(widths=(8, 16, 16, 16, 16), hidden=32) if tiny else {}
    return build(num_classes=num_classes, norm=norm, **extra)


class _BareModule(L.LightningModule):
    """The least a LightningModule can be: forward, loss, SGD. Separates Lightning's own loop
    cost from what alexlab's module adds."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return torch.nn.functional.cross_entropy(self.net(images), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def lightning_rate(
    datamodule, net, *, warmup: int, batches: int, accelerator: str, precision: str,
    bare: bool = False,
) -> float:  # fmt: skip
    """images/s of alexlab's module (or the bare one) under Lightning's fit loop (no logger,
    checkpoint or bar)."""
    if bare:
        module = _BareModule(net)
    else:
        module = ClassificationModule(net, functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9),
                                      num_classes=datamodule.num_classes)  # fmt: skip
    timer = _StepTimer(warmup)
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=warmup + batches,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=[timer])  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return timer.rate


def raw_rate(
    net, batch, *, warmup: int, batches: int, device: torch.device, precision: str
) -> float:
    """The same steps in a minimal PyTorch loop: forward, loss, backward, SGD step."""
    net = net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    images, labels = (t.to(device) for t in batch)
    dtype = torch.bfloat16 if precision.startswith("bf16") else None
    start = None
    for step in range(warmup + batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(net(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches * images.shape[0] / (time.perf_counter() - start)


def bench_training(root: Path, *, models: list[str], batch_size: int, image_size: int, warmup: int,
                   batches: int, runs: int, workers: int, precision: str) -> list[dict]:  # fmt: skip
    """Training images/s: synthetic data on the device (the compute ceiling), then each loader
    end to end; ratios against the ceiling."""
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    rows = []
    for model in models:
        sources = {"synthetic (on device)": SyntheticDataModule(num_classes=10, batch_size=batch_size,
                   image_size=image_size, steps_per_epoch=warmup + batches, val_steps=0)}  # fmt: skip
        for loader in ["dali"] * dali.DALI_AVAILABLE + ["torch"]:
            sources[f"{loader} loader"] = ImageDataModule(
                root=root, source=FolderSource, loader=loader, batch_size=batch_size,
                image_size=image_size, num_workers=workers, dali_threads=workers, pin_memory=True,
            )  # fmt: skip
        ceiling = None
        for name, dm in sources.items():
            per_run = [lightning_rate(dm, _tiny_or_full(model, dm.num_classes, tiny=False), warmup=warmup,
                                      batches=batches, accelerator=accelerator, precision=precision)
                       for _ in range(runs)]  # fmt: skip
            median = statistics.median(per_run)
            ceiling = ceiling or median
            rows.append({"what": f"train {model} @{image_size}: {name}", "median": median,
                         "runs": per_run, "ratio": median / ceiling})  # fmt: skip
    return rows


def bench_overhead(
    *, batch_sizes: list[int], warmup: int, batches: int, runs: int, precision: str
) -> list[dict]:
    """alexlab's Lightning step and a bare LightningModule against a raw loop: tiny AlexNet-BN,
    64 px, data on the device, at each batch size (a larger batch, a longer step)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for batch_size in batch_sizes:
        dm = SyntheticDataModule(num_classes=10, batch_size=batch_size, image_size=64,
                                 steps_per_epoch=warmup + batches, val_steps=0)  # fmt: skip
        batch = next(iter(dm.train_dataloader()))
        rates = {"raw": [], "bare": [], "alexlab": []}
        for run in range(runs):  # interleaved, so drift in the machine hits all alike
            torch.manual_seed(run)
            rates["raw"].append(raw_rate(_tiny_or_full("alexnet_bn", 10, tiny=True), batch, warmup=warmup,
                                         batches=batches, device=device, precision=precision))  # fmt: skip
            for name in ("bare", "alexlab"):
                torch.manual_seed(run)
                rates[name].append(lightning_rate(dm, _tiny_or_full("alexnet_bn", 10, tiny=True), warmup=warmup,
                                                  batches=batches, accelerator=device.type, precision=precision,
                                                  bare=name == "bare"))  # fmt: skip
        medians = {k: statistics.median(v) for k, v in rates.items()}
        step_ms = {k: 1000 * batch_size / v for k, v in medians.items()}
        labels = {
            "raw": f"raw PyTorch loop, batch {batch_size} ({step_ms['raw']:.1f} ms/step)",
            "bare": f"bare LightningModule, batch {batch_size} (+{step_ms['bare'] - step_ms['raw']:.2f} ms/step)",
            "alexlab": f"alexlab module, batch {batch_size} (+{step_ms['alexlab'] - step_ms['raw']:.2f} ms/step)",
        }  # fmt: skip
        rows += [{"what": labels[k], "median": medians[k], "runs": rates[k],
                  "ratio": medians[k] / medians["raw"]} for k in rates]  # fmt: skip
    return rows


def table(rows: list[dict], unit: str = "images/s", digits: int = 0) -> str:
    lines = [f"| measurement | {unit} (median) | runs | ratio |", "|---|---:|---|---:|"]
    for r in rows:
        runs = ", ".join(f"{x:.{digits}f}" for x in r["runs"])
        lines.append(f"| {r['what']} | {r['median']:.{digits}f} | {runs} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


def data_report(root: Path, args: argparse.Namespace) -> str:
    """The loader tables: this code against the baseline, DALI decoding alone, set-up time."""
    baseline = args.baseline_src or Path(bench_loaders.__file__).resolve().parents[1]
    configs = [(name, count, True) for count in args.workers
               for name in ["torch"] + ["dali"] * dali.DALI_AVAILABLE]  # fmt: skip
    if dali.DALI_AVAILABLE:
        configs.append(("dali", args.workers[0], False))
    rows = bench_loaders.bench_against(root, baseline, configs=configs, batch_size=args.batch_size,
                                       warmup=args.warmup, batches=args.batches, runs=args.runs)  # fmt: skip
    previous = ", ".join(f"{r['baseline']:.0f}" for r in rows)
    text = (
        f"\n**Loaders.** {root.name} (~500x375 JPEGs), train augmentation (random-resized crop "
        f"to 224, flip, normalised on the device after transfer), batch {args.batch_size}, on "
        f"the device a fit would use; median of {args.runs} runs of {args.batches} batches after "
        f"{args.warmup}, each run a fresh process per code version, the versions interleaved. "
        f"Ratio: this code / the previous code (`{baseline}`; previous medians: "
        f"{previous}).\n\n{table(rows)}\n"
    )
    print(text, flush=True)  # (the rows so far, should a later part fail)
    if dali.DALI_AVAILABLE:
        decode = bench_loaders.decode_only(root, threads=args.workers, batch_size=args.batch_size,
                                           batches=args.batches)  # fmt: skip
        text += f"\n**DALI decoding alone** (reader + decoder), batch {args.batch_size}.\n\n{table(decode)}\n"
    if args.tree_files:
        big = bench_loaders.bench_large_tree(baseline, files=args.tree_files,
                                             batch_size=args.batch_size, runs=args.runs)  # fmt: skip
        previous = ", ".join(f"{r['baseline']:.1f}" for r in big)
        text += (
            f"\n**Set-up on a {args.tree_files:,}-file tree** (hard links to one small JPEG): "
            f"seconds from building the datamodule to the first train batch (listing, loader, "
            f"pipeline); ratio this / previous, lower is faster (previous medians: "
            f"{previous} s).\n\n{table(big, unit='seconds', digits=1)}\n"
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alexlab.bench", description=__doc__)
    parser.add_argument("--root", type=Path, default=None,
                        help="an ImageNet-shaped tree; default: a generated one in the cache")  # fmt: skip
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("ALEXLAB_CACHE", ".cache"))
    )
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--workers", type=int, nargs="+", default=[cores, 2 * cores],
                        help="DataLoader workers / DALI threads to try (default: cores, 2 x cores)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="the previous code's src/ (e.g. `git archive <commit> src`) for the "
                        "loader ratios; default: this code against itself")  # fmt: skip
    parser.add_argument("--tree-files", type=int, default=100_000,
                        help="entries of the generated tree for the set-up time row (0: skip)")  # fmt: skip
    parser.add_argument("--what", nargs="+", default=["data", "train", "overhead"],
                        choices=["data", "train", "overhead"])  # fmt: skip
    parser.add_argument("--models", nargs="+", default=["alexnet", "alexnet_bn"])
    parser.add_argument("--train-batch-size", type=int, default=16)
    parser.add_argument("--train-batches", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--precision", default="32-true", help="e.g. bf16-mixed")
    parser.add_argument("--overhead-batch-sizes", type=int, nargs="+", default=[32, 256],
                        help="batch sizes of the overhead runs (tiny AlexNet-BN at 64 px)")  # fmt: skip
    parser.add_argument("--overhead-steps", type=int, default=150,
                        help="timed steps per overhead run (after 5 warm-up steps)")  # fmt: skip
    args = parser.parse_args(argv)

    root = args.root
    if root is None:
        root = args.cache / f"fake-imagenet-c{args.classes}-p{args.per_class}"
        if not root.exists():
            print(f"writing {root} ...")
            write_fake_imagenet(root, classes=args.classes, per_class=args.per_class)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    report = f"\n### `python -m alexlab.bench`, {stamp}\n\nMachine: {machine()}\n"
    if "data" in args.what:
        report += data_report(root, args)
    if "train" in args.what:
        rows = bench_training(root, models=args.models, batch_size=args.train_batch_size,
                              image_size=args.image_size, warmup=args.warmup,
                              batches=args.train_batches, runs=args.runs,
                              workers=args.workers[0], precision=args.precision)  # fmt: skip
        report += (
            f"\n**Training** (forward, backward, SGD step under Lightning), batch "
            f"{args.train_batch_size}, precision {args.precision}; median of {args.runs} runs "
            f"of {args.train_batches} steps after {args.warmup}. Ratio: against the synthetic "
            f"(data already on the device) ceiling of the same model.\n\n{table(rows)}\n"
        )
    if "overhead" in args.what:
        rows = bench_overhead(batch_sizes=args.overhead_batch_sizes, warmup=5, batches=args.overhead_steps,
                              runs=args.runs, precision=args.precision)  # fmt: skip
        report += (
            f"\n**Framework overhead**: a step under Lightning's fit loop against a minimal "
            f"PyTorch loop (forward, loss, backward, SGD), tiny AlexNet-BN at 64 px, data on "
            f"the device, precision {args.precision}: a bare LightningModule (Lightning's own "
            f"loop cost) and alexlab's module (metrics, logging, schedule hooks); median of "
            f"{args.runs} interleaved runs of {args.overhead_steps} steps after 5. The ms/step is the added time "
            f"per step; the ratio is its throughput against the raw loop.\n\n{table(rows)}\n"
        )
    print(report)
    with args.out.open("a") as f:
        f.write(report)
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
