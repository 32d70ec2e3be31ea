"""``python -m benchmarks.bench``: loader throughput, side by side, as ratios.

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
from collections.abc import Iterable, Iterator
from pathlib import Path

import lightning as L
import torch

from alexlab.data import dali
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.fake_imagenet import write_fake_imagenet
from alexlab.data.sources import FolderSource
from alexlab.data.synthetic import SyntheticDataModule
from alexlab.module import ClassificationModule
from benchmarks import bench_loaders, peers


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    cores = usable_cores()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    dali_version = "not installed"
    if dali.DALI_AVAILABLE:
        import nvidia.dali

        dali_version = nvidia.dali.__version__
    return (
        f"{cpu}, {cores} cores usable, {gpu}; torch {torch.__version__}, "
        f"DALI {dali_version}, Python {platform.python_version()}"
    )


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


def _tiny_or_full(model: str, num_classes: int, tiny: bool, **speed: bool):
    """AlexNet (LRN) or AlexNet-BN, full size or tiny; ``speed``: ``channels_last``, ``compile``."""
    from alexlab.models.alexnet import build

    norm = "bn" if model == "alexnet_bn" else "lrn"
    extra = dict(widths=(8, 16, 16, 16, 16), hidden=32) if tiny else {}
    return build(num_classes=num_classes, norm=norm, **extra, **speed)


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
    datamodule,
    net,
    *,
    warmup: int,
    batches: int,
    accelerator: str,
    precision: str,
    bare: bool = False,
) -> float:
    """images/s of alexlab's module (or the bare one) under Lightning's fit loop (no logger,
    checkpoint or bar)."""
    if bare:
        module = _BareModule(net)
    else:
        module = ClassificationModule(
            net,
            functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9),
            num_classes=datamodule.num_classes,
        )
    timer = _StepTimer(warmup)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=warmup + batches,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.rate


AUTOCAST = {"bf16": torch.bfloat16, "16": torch.float16}  # "bf16-mixed", "16-mixed"


def raw_rate(
    net, batch, *, warmup: int, batches: int, device: torch.device, precision: str
) -> float:
    """The same steps in a minimal PyTorch loop: forward, loss, backward, SGD step, under the
    precision Lightning would use (autocast; float16 with a GradScaler, as Lightning does)."""
    net = net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    images, labels = (t.to(device) for t in batch)
    if precision.endswith("-true") and not precision.startswith("32"):
        raise ValueError(f"--precision={precision}: the raw loop runs 32-true or *-mixed only")
    dtype = AUTOCAST.get(precision.split("-")[0]) if precision.endswith("-mixed") else None
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    start = None
    for step in range(warmup + batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(net(images), labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches * images.shape[0] / (time.perf_counter() - start)


def bench_training(
    root: Path,
    *,
    models: list[str],
    batch_size: int,
    image_size: int,
    warmup: int,
    batches: int,
    runs: int,
    workers: int,
    precision: str,
    channels_last: bool,
    compile_modes: list[bool],
    tiny: bool = False,
) -> list[dict]:
    """Training images/s: synthetic data on the device (the compute ceiling; with and without
    ``torch.compile`` where asked), then each loader end to end; ratios against the ceiling (the
    eager synthetic row). ``tiny``: the ~30K-parameter network (a test of the rows, not a
    measurement: a step of the full one takes seconds on a CPU)."""
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    rows = []
    for model in models:
        sources = {}
        for compiled in compile_modes:
            sources[f"synthetic (on device){', compiled' * compiled}"] = (
                compiled,
                SyntheticDataModule(
                    num_classes=10,
                    batch_size=batch_size,
                    image_size=image_size,
                    steps_per_epoch=warmup + batches,
                    val_steps=0,
                ),
            )
        sized = sized_tree(root, images=batch_size * (warmup + batches))  # one epoch: no restart
        for loader in ["dali"] * dali.DALI_AVAILABLE + ["torch"]:
            sources[f"{loader} loader"] = (
                False,
                ImageDataModule(
                    root=sized,
                    source=FolderSource,
                    loader=loader,
                    batch_size=batch_size,
                    image_size=image_size,
                    num_workers=workers,
                    dali_threads=workers,
                    pin_memory=True,
                    channels_last=channels_last,
                ),
            )
        ceiling = None
        for name, (compiled, dm) in sources.items():
            per_run = [
                lightning_rate(
                    dm,
                    _tiny_or_full(
                        model,
                        dm.num_classes,
                        tiny=tiny,
                        channels_last=channels_last,
                        compile=compiled,
                    ),
                    warmup=warmup,
                    batches=batches,
                    accelerator=accelerator,
                    precision=precision,
                )
                for _ in range(runs)
            ]
            median = statistics.median(per_run)
            ceiling = ceiling or median
            rows.append(
                {
                    "what": f"train {model}{' (tiny)' * tiny} @{image_size}: {name}",
                    "median": median,
                    "runs": per_run,
                    "ratio": median / ceiling,
                }
            )
    return rows


def sized_tree(root: Path, *, images: int) -> Path:
    """``root`` itself when its train split holds ``images``, else a tree beside it whose train
    split holds each train file ``k`` times (hard links: no disk, the same bytes to decode), so
    that one epoch covers the timed steps. An epoch of a small tree at a GPU's batch size is a
    few steps, and each epoch starts a new loader (a new DALI pipeline, new workers): the rows
    would time the restarts (0.3-0.4 s each on a CPU), not the loading."""
    files = sorted(p for p in (root / "train").rglob("*") if p.is_file())
    k = -(-images // max(len(files), 1))
    if k <= 1:
        return root
    sized = root.with_name(f"{root.name}-x{k}")
    if not sized.exists():
        tmp = sized.with_name(f"{sized.name}.tmp-{os.getpid()}")
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = f.relative_to(root)
            (tmp / rel.parent).mkdir(parents=True, exist_ok=True)
            for i in range(k if rel.parts[0] == "train" else 1):
                os.link(f, tmp / rel.parent / (f"{i}_{f.name}" if i else f.name))
        tmp.rename(sized)  # never a half-linked tree
    return sized


def bench_overhead(
    *, batch_sizes: list[int], warmup: int, batches: int, runs: int, precision: str
) -> list[dict]:
    """alexlab's Lightning step and a bare LightningModule against a raw loop: tiny AlexNet-BN,
    64 px, data on the device, at each batch size (a larger batch, a longer step)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for batch_size in batch_sizes:
        dm = SyntheticDataModule(
            num_classes=10,
            batch_size=batch_size,
            image_size=64,
            steps_per_epoch=warmup + batches,
            val_steps=0,
        )
        batch = next(iter(dm.train_dataloader()))
        rates = {"raw": [], "bare": [], "alexlab": []}
        for run in range(runs):  # interleaved, so drift in the machine hits all alike
            torch.manual_seed(run)
            rates["raw"].append(
                raw_rate(
                    _tiny_or_full("alexnet_bn", 10, tiny=True),
                    batch,
                    warmup=warmup,
                    batches=batches,
                    device=device,
                    precision=precision,
                )
            )
            for name in ("bare", "alexlab"):
                torch.manual_seed(run)
                rates[name].append(
                    lightning_rate(
                        dm,
                        _tiny_or_full("alexnet_bn", 10, tiny=True),
                        warmup=warmup,
                        batches=batches,
                        accelerator=device.type,
                        precision=precision,
                        bare=name == "bare",
                    )
                )
        medians = {k: statistics.median(v) for k, v in rates.items()}
        step_ms = {k: 1000 * batch_size / v for k, v in medians.items()}
        step_ms = {k: v - step_ms["raw"] if k != "raw" else v for k, v in step_ms.items()}

        labels = {
            "raw": f"raw PyTorch loop, batch {batch_size} ({step_ms['raw']:.1f} ms/step)",
            "bare": f"bare LightningModule, batch {batch_size} (+{step_ms['bare']:.2f} ms/step)",
            "alexlab": f"alexlab module, batch {batch_size} (+{step_ms['alexlab']:.2f} ms/step)",
        }
        rows += [
            {
                "what": labels[k],
                "median": medians[k],
                "runs": rates[k],
                "ratio": medians[k] / medians["raw"],
            }
            for k in rates
        ]
    return rows


def table(rows: list[dict], unit: str = "images/s", digits: int = 0) -> str:
    lines = [f"| measurement | {unit} (median) | runs | ratio |", "|---|---:|---|---:|"]
    for r in rows:
        runs = ", ".join(f"{x:.{digits}f}" for x in r["runs"])
        lines.append(f"| {r['what']} | {r['median']:.{digits}f} | {runs} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


def _endless(loader: Iterable) -> Iterator:
    """The loader's batches epoch after epoch, so a small tree still gives ``batches`` batches;
    the next epoch starts as Lightning starts it (``sampler.set_epoch``: alexlab's loaders
    otherwise continue a partly read epoch where it stopped, as after a resume)."""
    sampler = getattr(loader, "sampler", None)
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yields no batch: use a larger tree or a smaller batch")
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(sampler.epoch + 1)


def images_per_second(loader: Iterable, *, warmup: int, batches: int) -> float:
    it = _endless(loader)
    for _ in range(warmup):
        images, _labels = next(it)
    if warmup and images.is_cuda:
        torch.cuda.synchronize()  # the warm-up batches' device work is not timed
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        images, _labels = next(it)
        seen += images.shape[0]
    if images.is_cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def bench_prepared(
    root: Path,
    *,
    batch_size: int,
    workers: int,
    warmup: int,
    batches: int,
    runs: int,
    crops: tuple[str, ...] = ("random_resized", "paper"),
) -> str:
    """The same images full-size and as a prepared copy (``python -m alexlab.data prepare
    --shorter-side 256``, made next to ``root`` once): the torch and DALI train loaders side
    by side, runs interleaved. Returns a markdown table: DALI / torch per tree, prepared /
    full-size per loader."""
    from alexlab.data.prepare import Settings, prepare_tree

    copy = root.with_name(f"{root.name}-s256")
    summary = prepare_tree(root, copy, Settings(shorter_side=256), progress=False)
    ok = [r for r in summary.results if r.status != "problem"]
    trees = {
        "full-size": (root, _describe([r.size_in for r in ok], sum(r.bytes_in for r in ok))),
        "prepared": (copy, _describe([r.size_out for r in ok], sum(r.bytes_out for r in ok))),
    }
    loaders = ["torch"] + (["dali"] if dali.DALI_AVAILABLE else [])
    built = {
        (crop, tree, name): ImageDataModule(
            root=path,
            source=FolderSource,
            loader=name,
            batch_size=batch_size,
            num_workers=workers,
            dali_threads=workers,
            crop=crop,
            pin_memory=False,
        ).train_dataloader()
        for crop in crops
        for tree, (path, _) in trees.items()
        for name in loaders
    }
    rates: dict[tuple, list[float]] = {cfg: [] for cfg in built}
    for _ in range(runs):
        for cfg, loader in built.items():
            rates[cfg].append(images_per_second(loader, warmup=warmup, batches=batches))
    return _prepared_table(crops, {t: d for t, (_, d) in trees.items()}, loaders, workers, rates)


def _describe(sizes: list[tuple[int, int]], nbytes: int) -> str:
    n = max(len(sizes), 1)
    w, h = sum(s[0] for s in sizes) / n, sum(s[1] for s in sizes) / n
    return f"mean {w:.0f}x{h:.0f} px, {nbytes / 1e6:.1f} MB"


def _prepared_table(
    crops, trees: dict[str, str], loaders: list[str], workers: int, rates: dict[tuple, list[float]]
) -> str:
    med = {cfg: statistics.median(r) for cfg, r in rates.items()}
    names = {"torch": f"torch ({workers} workers)", "dali": f"DALI CPU ({workers} threads)"}
    cols = [f"{names[n]} images/s (runs)" for n in loaders]
    cols += ["DALI / torch"] if "dali" in loaders else []
    lines = ["| crop | tree | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for crop in crops:
        for tree, described in trees.items():
            cells = [
                f"{med[crop, tree, n]:.0f} ({', '.join(f'{x:.0f}' for x in rates[crop, tree, n])})"
                for n in loaders
            ]
            if "dali" in loaders:
                cells.append(f"{med[crop, tree, 'dali'] / med[crop, tree, 'torch']:.2f}x")
            lines.append(f"| {crop} | {tree}: {described} | " + " | ".join(cells) + " |")
        gains = [
            f"**{med[crop, 'prepared', n] / med[crop, 'full-size', n]:.2f}x**" for n in loaders
        ]
        gains += [""] * (len(cols) - len(gains))
        lines.append(f"| {crop} | prepared / full-size | " + " | ".join(gains) + " |")
    return "\n".join(lines)


def gpu_defaults(args: argparse.Namespace, *, gpu: bool) -> argparse.Namespace:
    """Fills the options left unset with the device's defaults (on a CPU: sized so that the
    whole `make bench` takes minutes, not a quarter of an hour)."""
    bf16 = gpu and torch.cuda.is_bf16_supported()
    cores = usable_cores()
    defaults = {  # option: (GPU, CPU)
        "runs": (5, 3),
        "workers": ([cores, 2 * cores], [cores]),
        "train_batch_size": (256, 8),
        "train_warmup": (20, 2),
        "train_batches": (200, 4),
        "precision": ("bf16-mixed" if bf16 else "16-mixed", "32-true"),
        "channels_last": (True, False),
        "compile": (["off", "on"], ["off"]),
        "overhead_warmup": (20, 5),
        "overhead_steps": (200, 60),
    }
    for name, (on_gpu, on_cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, on_gpu if gpu else on_cpu)
    return args


def data_report(root: Path, args: argparse.Namespace) -> str:
    """The loader tables: this code against the baseline, DALI decoding alone, set-up time."""
    baseline = args.baseline_src  # None: this code alone
    configs = [
        (name, count, True)
        for count in args.workers
        for name in ["torch"] + ["dali"] * dali.DALI_AVAILABLE
    ]
    if dali.DALI_AVAILABLE:
        configs.append(("dali", args.workers[0], False))
    rows = bench_loaders.bench_against(
        root,
        baseline,
        configs=configs,
        batch_size=args.batch_size,
        warmup=args.warmup,
        batches=args.batches,
        runs=args.runs,
    )
    previous = ", ".join(f"{r['baseline']:.0f}" for r in rows) if baseline else ""
    versus = (
        f"this code / the previous code (`{baseline}`; previous medians: {previous})"
        if baseline
        else f"against the first row ({rows[0]['what']})"
    )
    text = (
        f"\n**Loaders.** {root.name} (~500x375 JPEGs), train augmentation (random-resized crop "
        f"to 224, flip, normalised where a fit normalises: in the loader on a CPU, on the device "
        f"after a uint8 copy on a GPU), batch {args.batch_size}, on "
        f"the device a fit would use; median of {args.runs} runs of {args.batches} batches after "
        f"{args.warmup}, each run a fresh process"
        f"{' per code version, the versions interleaved' if baseline else ''}. "
        f"Ratio: {versus}.\n\n{table(rows)}\n"
    )
    print(text, flush=True)  # (the rows so far, should a later part fail)
    if dali.DALI_AVAILABLE:
        decode = bench_loaders.decode_only(
            root, threads=args.workers, batch_size=args.batch_size, batches=args.batches
        )
        text += (
            f"\n**DALI decoding alone** (reader + decoder), batch {args.batch_size}.\n\n"
            f"{table(decode)}\n"
        )
    if args.tree_files:
        big = bench_loaders.bench_large_tree(
            baseline, files=args.tree_files, batch_size=args.batch_size, runs=args.runs
        )
        previous = ", ".join(f"{r['baseline']:.1f}" for r in big) if baseline else ""
        versus = (
            f"this / previous, lower is faster (previous medians: {previous} s)"
            if baseline
            else "against the first row"
        )
        text += (
            f"\n**Set-up on a {args.tree_files:,}-file tree** (hard links to one small JPEG): "
            f"seconds from building the datamodule to the first train batch (listing, loader, "
            f"pipeline); ratio {versus}.\n\n{table(big, unit='seconds', digits=1)}\n"
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="an ImageNet-shaped tree; default: a generated one in the cache",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("ALEXLAB_CACHE", ".cache"))
    )
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=None,
        help="DataLoader workers / DALI threads to try (GPU: cores, 2 x cores; CPU: cores)",
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=None, help="GPU 5, CPU 3")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="the previous code's src/ (e.g. `git archive <commit> src`) for the "
        "loader ratios; default: this code against itself",
    )
    parser.add_argument(
        "--tree-files",
        type=int,
        default=100_000,
        help="entries of the generated tree for the set-up time row (0: skip)",
    )
    parts = ["data", "prepared", "train", "overhead", "peers"]
    parser.add_argument(
        "--what",
        nargs="+",
        default=parts,
        choices=parts,
        help="prepared: the same images full-size and prepared (prepare.py); "
        "peers: torchvision's and NVIDIA's loaders, a plain loop (peers.py)",
    )
    parser.add_argument("--models", nargs="+", default=["alexnet", "alexnet_bn"])
    parser.add_argument(
        "--tiny-models",
        action="store_true",
        help="training rows on the ~30K-parameter networks (a quick test of the bench itself)",
    )
    # training and overhead: GPU-sized on a GPU (one step at batch 256 takes milliseconds there),
    # a few minutes in all on a small CPU; None = that device's default (gpu_defaults)
    parser.add_argument("--train-batch-size", type=int, default=None, help="GPU 256, CPU 8")
    parser.add_argument("--train-warmup", type=int, default=None, help="GPU 20, CPU 2")
    parser.add_argument("--train-batches", type=int, default=None, help="timed; GPU 200, CPU 4")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--precision", default=None, help="GPU bf16-mixed (16-mixed before Ampere), CPU 32-true"
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC weights and batches; GPU on, CPU off",
    )
    parser.add_argument(
        "--compile",
        nargs="+",
        choices=["off", "on"],
        default=None,
        help="synthetic ceiling rows; GPU: off on, CPU: off",
    )
    parser.add_argument(
        "--overhead-batch-sizes",
        type=int,
        nargs="+",
        default=[32, 256],
        help="batch sizes of the overhead runs (tiny AlexNet-BN at 64 px)",
    )
    parser.add_argument("--overhead-warmup", type=int, default=None, help="GPU 20, CPU 5")
    parser.add_argument(
        "--overhead-steps",
        type=int,
        default=None,
        help="timed steps per overhead run; GPU 200, CPU 60",
    )
    args = gpu_defaults(parser.parse_args(argv), gpu=torch.cuda.is_available())
    began = time.perf_counter()

    root = args.root
    if root is None:
        root = args.cache / f"fake-imagenet-c{args.classes}-p{args.per_class}"
        if not root.exists():
            print(f"writing {root} ...")
            write_fake_imagenet(root, classes=args.classes, per_class=args.per_class)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    report = f"\n### `python -m benchmarks.bench`, {stamp}\n\nMachine: {machine()}\n"
    parts, last = [], time.perf_counter()  # (part, minutes): what to leave out when in a hurry

    def took(part: str) -> None:
        nonlocal last
        parts.append(f"{part} {(time.perf_counter() - last) / 60:.1f}")
        last = time.perf_counter()

    if "data" in args.what:
        report += data_report(root, args)
        took("data")
    if "prepared" in args.what:  # the same images, full-size and as a prepared copy
        name = f"fake-imagenet-c{args.classes}-p{args.per_class}-imagenet-sizes"
        sized = args.root or args.cache / name
        if not sized.exists():
            print(f"writing {sized} ...")
            write_fake_imagenet(
                sized, classes=args.classes, per_class=args.per_class, sizes="imagenet"
            )
        text = bench_prepared(
            sized,
            batch_size=args.batch_size,
            workers=args.workers[0],
            warmup=args.warmup,
            batches=args.batches,
            runs=args.runs,
        )
        report += (
            f"\n**Prepared copy.** {sized.name} (`fake-imagenet --sizes imagenet`"
            f"{'' if args.root else ': ~400x350 on average, 3% at 1-5 MP'}) against its copy "
            f"made by `python -m alexlab.data prepare --shorter-side 256`; train augmentation "
            f"(random-resized crop to 224, or the paper's crop: shorter side 256, central square, "
            f"random 224 crop), flip, normalise; batch {args.batch_size}; median (runs) of "
            f"{args.runs} interleaved runs of {args.batches} batches after {args.warmup}.\n\n"
            f"{text}\n"
        )
        took("prepared")
    if "train" in args.what:
        rows = bench_training(
            root,
            models=args.models,
            batch_size=args.train_batch_size,
            image_size=args.image_size,
            warmup=args.train_warmup,
            batches=args.train_batches,
            runs=args.runs,
            workers=args.workers[0],
            precision=args.precision,
            channels_last=args.channels_last,
            compile_modes=[m == "on" for m in args.compile],
            tiny=args.tiny_models,
        )
        report += (
            f"\n**Training** (forward, backward, SGD step under Lightning), batch "
            f"{args.train_batch_size}, precision {args.precision}, channels-last "
            f"{'on' if args.channels_last else 'off'}; median of {args.runs} runs of "
            f"{args.train_batches} steps after {args.train_warmup}. Ratio: against the synthetic "
            f"(data already on the device, not compiled) ceiling of the same model.\n\n"
            f"{table(rows)}\n"
        )
        took("train")
    if "overhead" in args.what:
        rows = bench_overhead(
            batch_sizes=args.overhead_batch_sizes,
            warmup=args.overhead_warmup,
            batches=args.overhead_steps,
            runs=args.runs,
            precision=args.precision,
        )
        report += (
            f"\n**Framework overhead**: a step under Lightning's fit loop against a minimal "
            f"PyTorch loop (forward, loss, backward, SGD), tiny AlexNet-BN at 64 px, data on "
            f"the device, precision {args.precision} in all three: a bare LightningModule "
            f"(Lightning's own loop cost) and alexlab's module (metrics, logging, schedule "
            f"hooks); median of {args.runs} interleaved runs of {args.overhead_steps} steps after "
            f"{args.overhead_warmup}. The ms/step is the added time per step; the ratio is its "
            f"throughput against the raw loop.\n\n{table(rows)}\n"
        )
        took("overhead")
    if "peers" in args.what:
        name = f"fake-imagenet-c{args.classes}-p{args.per_class}-imagenet-sizes"
        sized = args.root or args.cache / name
        if not sized.exists():
            print(f"writing {sized} ...")
            write_fake_imagenet(
                sized, classes=args.classes, per_class=args.per_class, sizes="imagenet"
            )
        report += peers.report(
            sized,
            batch_size=args.batch_size,
            workers=args.workers[0],
            batches=args.batches,
            rounds=args.runs,
        )
        took("peers")
    report += (
        f"\nThe whole bench took {(time.perf_counter() - began) / 60:.1f} min "
        f"({', '.join(parts)} min; `--what` picks parts).\n"
    )
    print(report)
    with args.out.open("a") as f:
        f.write(report)
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
