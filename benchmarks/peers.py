"""The peers table of ``make bench``: alexlab against what a user would otherwise write.

Loader rows (images per second, one process, the two sides interleaved round by round so drift
in the machine hits both alike; what a loader prefetched while the other ran is drained before
each timed round):
- alexlab's torch loader against a torchvision reference-style loader, written the way
  torchvision's classification reference does it (``ImageFolder``, PIL ``RandomResizedCrop``,
  flip, to tensor, ``Normalize``, in ``DataLoader`` workers);
- alexlab's DALI loader against a DALI pipeline built as NVIDIA's ResNet-50 example builds it
  (file reader, ``decoders.image_random_crop``, ``resize``, ``crop_mirror_normalize``), both
  on DALI's CPU backend.

DALI stage rows: the two DALI pipelines grown one operator at a time (read, random-crop decode,
resize, crop-mirror-normalise) on one thread, milliseconds per image: where the time goes.

Whole-job row: one epoch of a minimal plain-PyTorch loop (the reference loader, AlexNet
(torchvision layout), cross-entropy, SGD) against ``python train.py`` on the same tree, as
processes timed from their start to their exit, with each one's fixed costs: start-up to the
first step, and the last step to the exit.

``python -m benchmarks.peers ROOT`` (a class-folder tree with train/ and val/; make one with
``python -m alexlab.data fake-imagenet DIR --sizes imagenet``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch

from alexlab.data.augment import IMAGENET_MEAN, IMAGENET_STD, Augment

ROOT = Path(__file__).resolve().parents[1]


def torchvision_reference(
    root: Path, *, batch_size: int, workers: int
) -> torch.utils.data.DataLoader:
    """torchvision's classification reference, train preset (references/classification)."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = datasets.ImageFolder(str(root / "train"), tf)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )


# NVIDIA's example's random-crop decode and resize arguments
NV_CROP = dict(random_aspect_ratio=[0.8, 1.25], random_area=[0.1, 1.0], num_attempts=100)
NV_INTERP = "INTERP_TRIANGULAR"  # (a name: DALI is imported only where it is used)


def nvidia_example(root: Path, *, batch_size: int, threads: int):
    """NVIDIA's DALI ResNet-50 example pipeline (DALI's use_cases/pytorch/resnet50), training
    branch, with ``dali_cpu=True``: CPU decoding, CPU resize, float CHW out."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import DALIClassificationIterator, LastBatchPolicy

    @pipeline_def
    def create_dali_pipeline(data_dir, crop):
        images, labels = fn.readers.file(
            file_root=data_dir, random_shuffle=True, pad_last_batch=True, name="Reader"
        )
        images = fn.decoders.image_random_crop(
            images, device="cpu", output_type=types.RGB, **NV_CROP
        )
        images = fn.resize(
            images,
            device="cpu",
            resize_x=crop,
            resize_y=crop,
            interp_type=getattr(types, NV_INTERP),
        )
        mirror = fn.random.coin_flip(probability=0.5)
        images = fn.crop_mirror_normalize(
            images,
            dtype=types.FLOAT,
            output_layout="CHW",
            crop=(crop, crop),
            mirror=mirror,
            mean=[m * 255 for m in IMAGENET_MEAN],
            std=[s * 255 for s in IMAGENET_STD],
        )
        return images, labels

    pipe = create_dali_pipeline(
        data_dir=str(root / "train"),
        crop=224,
        batch_size=batch_size,
        num_threads=threads,
        device_id=None,
        seed=0,
    )
    pipe.build()
    return DALIClassificationIterator(
        pipe, reader_name="Reader", last_batch_policy=LastBatchPolicy.PARTIAL, auto_reset=True
    )


def alexlab_loader(root: Path, loader: str, *, batch_size: int, workers: int):
    """alexlab's train loader as a CPU fit builds it (normalised float batches)."""
    from alexlab.data.datamodule import ImageDataModule
    from alexlab.data.sources import FolderSource

    dm = ImageDataModule(
        root=root,
        source=FolderSource,
        loader=loader,
        batch_size=batch_size,
        num_workers=workers,
        dali_threads=workers,
        pin_memory=False,
    )
    return dm.train_dataloader()


def forever(loader) -> Iterator[int]:
    """Images per batch, epoch after epoch (alexlab's loaders get their epoch set)."""
    epoch = 0
    while True:
        if hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            images = batch[0]["data"] if isinstance(batch[0], dict) else batch[0]  # DALI: dicts
            yield images.shape[0]
        epoch += 1


def interleaved(pairs: dict, *, batches: int, drain: int, rounds: int) -> dict[str, list[float]]:
    """Images/s of each named loader per round, the loaders taking turns."""
    streams = {name: forever(make()) for name, make in pairs.items()}
    for stream in streams.values():  # workers started, first batches out
        for _ in range(drain):
            next(stream)
    rates: dict[str, list[float]] = {name: [] for name in streams}
    for _ in range(rounds):
        for name, stream in streams.items():
            for _ in range(drain):  # what it prefetched while the other one ran
                next(stream)
            start, seen = time.perf_counter(), 0
            for _ in range(batches):
                seen += next(stream)
            rates[name].append(seen / (time.perf_counter() - start))
    return rates


def loader_rows(
    root: Path, *, batch_size: int, workers: int, batches: int, rounds: int
) -> list[dict]:
    from alexlab.data import dali

    kw = dict(batch_size=batch_size)
    pairs = [
        (
            "torch loader",
            "torchvision reference",
            lambda: alexlab_loader(root, "torch", workers=workers, **kw),
            lambda: torchvision_reference(root, workers=workers, **kw),
        )
    ]
    if dali.DALI_AVAILABLE:
        pairs.append(
            (
                "DALI loader (CPU)",
                "NVIDIA example (CPU)",
                lambda: alexlab_loader(root, "dali", workers=workers, **kw),
                lambda: nvidia_example(root, threads=workers, **kw),
            )
        )
    rows = []
    for ours, peer, make_ours, make_peer in pairs:
        got = interleaved(
            {ours: make_ours, peer: make_peer},
            batches=batches,
            drain=2 * workers + 2,
            rounds=rounds,
        )
        a, b = statistics.median(got[ours]), statistics.median(got[peer])
        rows.append(
            {
                "alexlab": ours,
                "peer": peer,
                "alexlab_rate": a,
                "peer_rate": b,
                "ratio": a / b,
                "runs": got,
            }
        )
    return rows


# One epoch of the plain-PyTorch loop a user would write: the reference loader, torchvision's
# AlexNet, cross-entropy, SGD (momentum 0.9, weight decay 5e-4 as the 2012 paper, §5). With
# "reference", what torchvision's classification reference train.py does after each epoch as well:
# evaluate on val (its eval preset: resize 256, centre crop 224) and save the checkpoint twice
# (model_{epoch}.pth and checkpoint.pth: model, optimizer and epoch).
PLAIN_LOOP = r"""
import json, sys, tempfile, time
import torch
from torchvision import datasets, models, transforms
from benchmarks.peers import IMAGENET_MEAN, IMAGENET_STD, torchvision_reference
from pathlib import Path
a = json.loads(sys.argv[1])
loader = torchvision_reference(Path(a["root"]), batch_size=a["batch"], workers=a["workers"])
model = models.alexnet(num_classes=len(loader.dataset.classes))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
stamps = []
for images, labels in loader:
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    stamps.append(time.time())
if a["reference"]:
    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    val = datasets.ImageFolder(str(Path(a["root"]) / "val"), tf)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for images, labels in torch.utils.data.DataLoader(
            val, batch_size=a["batch"], num_workers=a["workers"]
        ):
            correct += (model(images).argmax(1) == labels).sum().item()
    print(f"Acc@1 {100 * correct / len(val):.3f}", file=sys.stderr)
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 0}
    with tempfile.TemporaryDirectory() as out:
        torch.save(checkpoint, Path(out) / "model_0.pth")
        torch.save(checkpoint, Path(out) / "checkpoint.pth")
print(json.dumps({"first_step": stamps[0], "last_step": stamps[-1], "steps": len(stamps)}))
"""


class StepStamps(L.Callback):
    """A callback (``+callbacks.stamps._target_=benchmarks.peers.StepStamps``) that writes the
    wall-clock times of the first and last training step to ``path``."""

    def __init__(self, path: str) -> None:
        self.path, self.stamps = path, []

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.stamps.append(time.time())

    def on_fit_end(self, *args, **kwargs) -> None:
        first, last = self.stamps[0], self.stamps[-1]
        Path(self.path).write_text(
            json.dumps({"first_step": first, "last_step": last, "steps": len(self.stamps)})
        )


def _timed(cmd: list[str], stamps_from) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    start = time.time()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    end = time.time()
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-3000:]}")
    s = stamps_from(done)
    return {
        "wall": end - start,
        "to_first_step": s["first_step"] - start,
        "after_last_step": end - s["last_step"],
        "steps": s["steps"],
    }


def whole_job_rows(root: Path, *, batch_size: int, workers: int, loaders: list[str]) -> list[dict]:
    """Wall time of one epoch: the plain loop, then ``python train.py`` per alexlab loader."""
    rows = []
    for what, reference in [
        ("plain PyTorch loop (torchvision reference loader)", False),
        ("torchvision reference-style script (+ evaluate, save 2 checkpoints)", True),
    ]:
        args = dict(root=str(root), batch=batch_size, workers=workers, reference=reference)
        got = _timed(
            [sys.executable, "-c", PLAIN_LOOP, json.dumps(args)],
            lambda done: json.loads(done.stdout.strip().splitlines()[-1]),
        )
        rows.append({"what": what, **got})
    reference = rows[-1]
    for loader in loaders:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stamps.json"
            cmd = [
                sys.executable,
                "train.py",
                "data=folder",
                f"data.root={root}",
                f"data.loader={loader}",
                f"data.batch_size={batch_size}",
                f"data.num_workers={workers}",
                f"data.dali_threads={workers}",
                "model=alexnet_tv",
                "trainer=cpu",
                "trainer.max_epochs=1",
                "logger=csv",
                f"paths.output_dir={tmp}/run",
                f"hydra.run.dir={tmp}/run",
                "+callbacks.stamps._target_=benchmarks.peers.StepStamps",
                f"+callbacks.stamps.path={path}",
            ]
            got = _timed(cmd, lambda done, path=path: json.loads(path.read_text()))
            run = json.loads(next(Path(tmp).glob("run/metrics.json")).read_text())
        rows.append(
            {
                "what": f"python train.py (alexlab, {loader} loader)",
                **got,
                "fit": run["fit_seconds"],
                "ratio": reference["wall"] / got["wall"],
            }
        )
    return rows


STAGES = ("read", "+ decode (random crop)", "+ resize", "+ crop-mirror-normalise")


def dali_stage_rows(root: Path, *, batch_size: int, batches: int, rounds: int) -> list[dict]:
    """Milliseconds of one DALI CPU thread per image as each train pipeline grows by a stage
    (``STAGES``), with alexlab's arguments and with NVIDIA's example's; interleaved rounds,
    medians. Where the loader rows' time goes, and what the two pipelines do differently."""
    from nvidia.dali import fn, pipeline_def, types

    a = Augment()
    files = sorted(str(p) for p in (root / "train").glob("*/*"))
    sides = {  # (decode, resize) arguments
        "alexlab": (
            dict(  # as alexlab.data.dali.train_pipeline passes them
                random_area=list(a.scale),
                random_aspect_ratio=list(a.ratio),
                num_attempts=100,
                use_fast_idct=True,
            ),
            {},
        ),
        "NVIDIA example": (
            NV_CROP,
            {"interp_type": getattr(types, NV_INTERP)},
        ),
    }

    @pipeline_def
    def staged(stage: int, decode: dict, resize: dict):
        out, labels = fn.readers.file(files=files, name="Reader")
        if stage >= 1:
            out = fn.decoders.image_random_crop(out, device="cpu", output_type=types.RGB, **decode)
        if stage >= 2:
            out = fn.resize(out, resize_x=a.image_size, resize_y=a.image_size, **resize)
        if stage >= 3:
            out = fn.crop_mirror_normalize(
                out,
                dtype=types.FLOAT,
                output_layout="CHW",
                mirror=fn.random.coin_flip(probability=a.hflip_prob),
                mean=[255 * m for m in a.mean],
                std=[255 * s for s in a.std],
            )
        return out, labels

    pipes = {}
    for side, (decode, resize) in sides.items():
        for stage in range(len(STAGES)):
            pipe = staged(
                stage,
                decode,
                resize,
                batch_size=batch_size,
                num_threads=1,
                device_id=None,
                seed=0,
                prefetch_queue_depth=1,
            )
            pipe.build()
            pipe.run()  # (first-run allocations)
            pipes[side, stage] = pipe
    ms: dict[tuple, list[float]] = {key: [] for key in pipes}
    for _ in range(rounds):
        for key, pipe in pipes.items():
            start = time.perf_counter()
            for _ in range(batches):
                pipe.run()
            ms[key].append((time.perf_counter() - start) * 1000 / (batches * batch_size))
    return [
        {"stage": name, **{side: statistics.median(ms[side, i]) for side in sides}}
        for i, name in enumerate(STAGES)
    ]


def table(loaders: list[dict], jobs: list[dict], stages: list[dict] | None = None) -> str:
    """The peers table as Markdown."""
    lines = ["| alexlab | images/s | peer | images/s | ratio |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['alexlab']} | {r['alexlab_rate']:.1f} | {r['peer']} | {r['peer_rate']:.1f} | "
        f"{r['ratio']:.2f}x |"
        for r in loaders
    ]
    lines += [
        "",
        "| whole job, one epoch | wall s | fit s | start-up to first step s | "
        "last step to exit s | reference / this |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['what']} | {r['wall']:.1f} | {r.get('fit', float('nan')):.1f} | "
        f"{r['to_first_step']:.1f} | {r['after_last_step']:.1f} | "
        f"{r.get('ratio', 1.0):.2f}x |"
        for r in jobs
    ]
    if stages:
        lines += [
            "",
            "| DALI CPU train pipeline, 1 thread: ms per image | alexlab | NVIDIA example |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['stage']} | {r['alexlab']:.2f} | {r['NVIDIA example']:.2f} |" for r in stages
        ]
    return "\n".join(lines)


def report(
    root: Path,
    *,
    batch_size: int,
    workers: int,
    batches: int,
    rounds: int,
    job_batch_size: int = 32,
    job_root: Path | None = None,
) -> str:
    """The peers section of BENCHMARKS.md (``make bench``'s ``--what peers``)."""
    from alexlab.data import dali

    loaders = loader_rows(
        root, batch_size=batch_size, workers=workers, batches=batches, rounds=rounds
    )
    stages = (
        dali_stage_rows(root, batch_size=batch_size, batches=batches, rounds=rounds)
        if dali.DALI_AVAILABLE
        else None
    )
    jobs = whole_job_rows(
        job_root or root,
        batch_size=job_batch_size,
        workers=workers,
        loaders=["torch", "dali"] if dali.DALI_AVAILABLE else ["torch"],
    )
    return (
        f"\n**Peers** (`benchmarks/peers.py`) on {root.name}: alexlab's loaders against a "
        f"torchvision reference-style loader and NVIDIA's ResNet-50 example DALI pipeline (CPU "
        f"backend), {workers} workers or threads, batch {batch_size}, train augmentation, float "
        f"normalised batches; median of {rounds} interleaved rounds of {batches} batches, "
        f"prefetched batches drained before each. Whole job: one epoch of "
        f"{(job_root or root).name}, AlexNet (torchvision layout), batch {job_batch_size}, CPU, "
        "processes timed from start to exit. DALI stages: the train pipeline grown one "
        "operator at a time, one thread, the same rounds.\n\n"
        f"{table(loaders, jobs, stages)}\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="class-folder tree with train/ and val/")
    parser.add_argument("--batch-size", type=int, default=64, help="loader rows")
    parser.add_argument("--job-batch-size", type=int, default=32, help="whole-job rows")
    parser.add_argument("--workers", type=int, default=2, help="workers / DALI threads")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--job-root", type=Path, default=None, help="whole-job tree; default: root")
    args = parser.parse_args(argv)
    print(
        report(
            args.root,
            batch_size=args.batch_size,
            workers=args.workers,
            batches=args.batches,
            rounds=args.rounds,
            job_batch_size=args.job_batch_size,
            job_root=args.job_root,
        )
    )


if __name__ == "__main__":
    main()
