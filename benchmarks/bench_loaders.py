"""The loader rows of ``make bench-data``: this code against a baseline copy, side by side.

Each measurement runs in a fresh process per code version (``PYTHONPATH`` = that version's
``src``), with the runs of the two versions interleaved, so drift in the machine hits both
alike. A loader is built as a fit builds it: the datamodule is attached to a Trainer for the
device a fit would use (a GPU: DALI decodes ``mixed`` and batches are on the device), and every
batch goes through the datamodule's ``on_after_batch_transfer`` (normalisation on the device).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import alexlab

# Runs under either code version: only what both versions' ImageDataModule accept.
_MEASURE = r"""
import json, sys, time, torch, lightning as L
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import FolderSource
a = json.loads(sys.argv[1])
trainer = L.Trainer(accelerator="auto", devices=1, logger=False)  # the device a fit would use
device = trainer.strategy.root_device
def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()
def build(loader, count, fast):
    start = time.perf_counter()
    dm = ImageDataModule(root=a["root"], source=FolderSource, loader=loader, batch_size=a["batch"],
                         num_workers=count, dali_threads=count, dali_fast_idct=fast,
                         image_size=224, pin_memory=True)
    dm.trainer = trainer  # as Trainer.fit attaches it: rank, world size and device come from it
    return dm, dm.train_dataloader(), start
def batches(dm, loader):
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for x, y in loader:
            yield dm.on_after_batch_transfer((x.to(device, non_blocking=True),
                                              y.to(device, non_blocking=True)), 0)
        epoch += 1
out = []
for loader, count, fast in a["configs"]:
    dm, it, start = build(loader, count, fast)
    gen = batches(dm, it)
    next(gen)
    sync()
    if a["first_batch_only"]:
        out.append(time.perf_counter() - start)
        continue
    for _ in range(a["warmup"]):
        next(gen)
    sync()
    start, seen = time.perf_counter(), 0
    for _ in range(a["batches"]):
        seen += next(gen)[0].shape[0]
    sync()
    out.append(seen / (time.perf_counter() - start))
print(json.dumps(out))
"""


def _run(src: Path, args: dict) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"measuring with {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_against(
    root: Path,
    baseline: Path | None,
    *,
    configs: list[tuple[str, int, bool]],
    batch_size: int,
    warmup: int,
    batches: int,
    runs: int,
    first_batch_only: bool = False,
) -> list[dict]:
    """One row per config: this code's median, the baseline's, ratio this / baseline. Without
    a baseline, this code alone, each row's ratio against the first config's median."""
    src = Path(alexlab.__file__).resolve().parents[1]
    args = dict(
        root=str(root),
        batch=batch_size,
        warmup=warmup,
        batches=batches,
        configs=configs,
        first_batch_only=first_batch_only,
    )
    got: dict[str, list[list[float]]] = {"new": [], "old": []}
    for _ in range(runs):
        got["new"].append(_run(src, args))
        if baseline is not None:
            got["old"].append(_run(baseline, args))
    rows, first = [], statistics.median(r[0] for r in got["new"])
    for i, (loader, count, fast) in enumerate(configs):
        new = [r[i] for r in got["new"]]
        kind = "workers" if loader == "torch" else "threads"
        idct = "" if fast or loader == "torch" else ", exact IDCT"
        row = {
            "what": f"{loader} ({kind} = {count}{idct})",
            "median": statistics.median(new),
            "runs": new,
        }
        if baseline is None:
            row["ratio"] = row["median"] / first
        else:
            old = [r[i] for r in got["old"]]
            row.update(
                what=row["what"] + ": this code / previous",
                baseline=statistics.median(old),
                baseline_runs=old,
                ratio=row["median"] / statistics.median(old),
            )
        rows.append(row)
    return rows


def decode_only(root: Path, *, threads: list[int], batch_size: int, batches: int) -> list[dict]:
    """DALI decoding alone (reader + decoder, nothing after) per thread count and, on a GPU,
    per share of the hardware JPEG decoder."""
    import torch
    from nvidia.dali import fn, pipeline_def

    from alexlab.data import dali
    from alexlab.data.sources import class_folders, scan_split

    split = root / "train"
    files = [path for path, _ in scan_split(split, class_folders(split)).samples]
    gpu = torch.cuda.is_available()

    @pipeline_def
    def decode(hw: float):
        jpegs, _ = fn.readers.file(files=files, random_shuffle=False, name=dali.READER)
        return fn.decoders.image(jpegs, **dali._decoder(gpu, hw))

    rows = []
    for count in threads:
        for hw in [0.0, 0.65, 0.9] if gpu else [0.0]:
            pipe = decode(
                hw=hw, batch_size=batch_size, num_threads=count, device_id=0 if gpu else None
            )
            pipe.build()
            pipe.run()  # warm-up
            start = time.perf_counter()
            for _ in range(batches):
                pipe.run()
            rate = batches * batch_size / (time.perf_counter() - start)
            label = f", hw_decoder_load={hw}" if gpu else ""
            rows.append(
                {
                    "what": f"DALI decode only ({'mixed' if gpu else 'cpu'}), "
                    f"{count} threads{label}",
                    "median": rate,
                    "runs": [rate],
                    "ratio": 1.0,
                }
            )
    return rows


def link_tree(root: Path, *, files: int, classes: int = 100) -> Path:
    """``root/{train,val}/c###/`` holding ``files`` hard links to one small JPEG per class (a
    100k-entry tree in seconds, a few KB on disk; a file takes at most 65,000 links)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for c in range(classes):
        Image.new("RGB", (64, 48), (90, 120, c)).save(root / f"{c:03d}.jpg")
        for split in ("train", "val"):
            (root / split / f"c{c:03d}").mkdir(parents=True)
    for split, count in (("train", files), ("val", classes)):
        for i in range(count):
            c = f"{i % classes:03d}"
            os.link(root / f"{c}.jpg", root / split / f"c{c}" / f"{i:07d}.jpg")
    return root


def bench_large_tree(
    baseline: Path | None, *, files: int, batch_size: int, runs: int
) -> list[dict]:
    """Seconds from building the datamodule to the first train batch on a ``files``-entry tree
    (listing, loader and pipeline construction), this code against the baseline, or alone
    (``baseline`` None: ratios against the first config)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = link_tree(Path(tmp) / "tree", files=files)
        configs = [("dali", 2, True), ("torch", 0, True)]
        rows = bench_against(
            root,
            baseline,
            configs=configs,
            batch_size=batch_size,
            warmup=0,
            batches=0,
            runs=runs,
            first_batch_only=True,
        )
    for row in rows:
        row["what"] = row["what"].replace(
            " (", f" ({files:,}-file tree, seconds to the first batch; ", 1
        )
    return rows
