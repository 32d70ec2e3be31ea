"""``python -m alexlab.bench``: loader throughput, side by side, as ratios.

Each figure is the median of ``--runs`` timed runs after ``--warmup`` batches, all in one
invocation on the same cores, so the ratio compares like with like. The table is printed and
appended to BENCHMARKS.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from alexlab.data import dali
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.fake_imagenet import write_fake_imagenet
from alexlab.data.sources import FolderSource


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


def images_per_second(loader: Iterable, *, warmup: int, batches: int) -> float:
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        images, _labels = next(it)
        seen += images.shape[0]
    if images.is_cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def bench_loaders(root: Path, *, batch_size: int, workers: list[int], warmup: int,
                  batches: int, runs: int, image_size: int = 224) -> list[dict]:  # fmt: skip
    """Train-augmentation throughput (random-resized crop 224, flip, normalise) per loader and
    worker/thread count. Ratios: DALI against torch with the same count, and best against best."""
    rows = []
    loaders = ["torch"] + (["dali"] if dali.DALI_AVAILABLE else [])
    for count in workers:
        for name in loaders:
            dm = ImageDataModule(
                root=root, source=FolderSource, loader=name, batch_size=batch_size,
                num_workers=count, dali_threads=count, image_size=image_size, pin_memory=False,
            )  # fmt: skip
            loader = dm.train_dataloader()
            per_run = [
                images_per_second(loader, warmup=warmup, batches=batches) for _ in range(runs)
            ]
            kind = "DataLoader workers" if name == "torch" else "DALI CPU threads"
            rows.append({"loader": name, "count": count, "what": f"loader: {name} ({kind} = {count})",
                         "median": statistics.median(per_run), "runs": per_run})  # fmt: skip
    for row in rows:
        same = next(r for r in rows if r["loader"] == "torch" and r["count"] == row["count"])
        row["ratio"] = row["median"] / same["median"]
    best = {name: max((r for r in rows if r["loader"] == name), key=lambda r: r["median"])
            for name in loaders}  # fmt: skip
    if "dali" in best:
        rows.append({"what": f"best DALI ({best['dali']['count']} threads) / best torch "
                     f"({best['torch']['count']} workers)", "median": best["dali"]["median"],
                     "runs": [], "ratio": best["dali"]["median"] / best["torch"]["median"]})  # fmt: skip
    return rows


def table(rows: list[dict], unit: str = "images/s") -> str:
    lines = [f"| measurement | {unit} (median) | runs | ratio to torch |", "|---|---:|---|---:|"]
    for r in rows:
        runs = ", ".join(f"{x:.0f}" for x in r["runs"])
        lines.append(f"| {r['what']} | {r['median']:.0f} | {runs} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


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
    args = parser.parse_args(argv)

    root = args.root
    if root is None:
        root = args.cache / f"fake-imagenet-c{args.classes}-p{args.per_class}"
        if not root.exists():
            print(f"writing {root} ...")
            write_fake_imagenet(root, classes=args.classes, per_class=args.per_class)
    rows = bench_loaders(root, batch_size=args.batch_size, workers=args.workers,
                         warmup=args.warmup, batches=args.batches, runs=args.runs)  # fmt: skip
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    report = (
        f"\n### Loader throughput, {stamp}\n\n"
        f"Machine: {machine()}\n\n"
        f"Data: {root.name} (~500x375 JPEGs), train augmentation (random-resized crop to 224, "
        f"flip, normalise), batch {args.batch_size}; median of {args.runs} runs of "
        f"{args.batches} batches after {args.warmup} warm-up batches. Same cores for both; "
        f"each ratio compares DALI with torch at the same worker/thread count, the last row "
        f"each at its best count.\n\n{table(rows)}\n"
    )
    print(report)
    with args.out.open("a") as f:
        f.write(report)
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
