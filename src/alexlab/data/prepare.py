"""A copy of a class-folder tree at training resolution: decode less every epoch (docs/data.md,
"A prepared copy"). ``paper=True`` is Krizhevsky et al. 2012 §2 ("down-sampled to a fixed
resolution of 256 x 256"): shorter side to 256, then the central square."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from rich import progress as rp
from rich.console import Console

from alexlab.config import ConfigError
from alexlab.data import images
from alexlab.data.images import image_problem
from alexlab.data.sources import Problem, class_folders, split_folders

SETTINGS_FILE = ".alexlab-prepare.json"  # the settings DST was made with (hidden from loaders)


@dataclass(frozen=True)
class Settings:
    """What every output image gets: the ``prepare`` command's options of the same names
    (``--paper`` enlarges where needed, as the paper; otherwise images are never enlarged)."""

    shorter_side: int = 256
    max_side: int | None = None
    paper: bool = False
    quality: int = 90

    def __post_init__(self) -> None:
        if self.shorter_side < 1:
            raise ConfigError(f"--shorter-side {self.shorter_side} must be a positive number.")
        if self.max_side is not None and self.max_side < self.shorter_side:
            raise ConfigError(f"--max-side {self.max_side} must be >= --shorter-side.")
        if self.paper and self.max_side is not None:
            raise ConfigError("--paper makes square images: drop --max-side.")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"--quality {self.quality} must be in 1..100 (90 is a good value).")

    def plan(self, width: int, height: int) -> tuple[tuple[int, int], tuple | None]:
        """``((resized width, height), central crop box or None)`` for an input image."""
        scale = self.shorter_side / min(width, height)
        if not self.paper:  # never enlarge (the loader resizes anyway); longer side <= --max-side
            scale = min(scale, 1.0, (self.max_side or float("inf")) / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if not self.paper:
            return size, None
        s = self.shorter_side
        left, top = (size[0] - s) // 2, (size[1] - s) // 2
        return size, (left, top, left + s, top + s)


@dataclass
class Result:
    """What happened to one input file."""

    rel: str  # path relative to SRC (and DST)
    status: str  # "resized", "copied" (already as asked), "done" (earlier run), "problem"
    note: str = ""  # the conversion made, or the problem
    bytes_in: int = 0
    bytes_out: int = 0
    size_in: tuple[int, int] = (0, 0)
    size_out: tuple[int, int] = (0, 0)


@dataclass
class Summary:
    src: Path
    dst: Path
    seconds: float
    workers: int
    results: list[Result]
    problems: list[Problem]  # folders and files not written


def _atomic_write(dst: Path, write: Callable[[Path], None]) -> None:
    """Through a hidden temporary file renamed into place: a file that exists is finished, and
    a killed run continues where it stopped."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _conversions(img: Image.Image, want: str, suffix: str) -> list[str]:
    """What must change for the output to be an upright RGB ``want`` file (for the report): an
    upright copy without EXIF reads the same in every decoder."""
    notes = []
    if img.format != want:  # e.g. ImageNet's one PNG named .JPEG
        notes.append(f"{img.format} data in a {suffix} file -> {want}")
    if img.mode != "RGB":  # CMYK, grayscale (L), palette, RGBA ...
        notes.append(f"{img.mode} -> RGB")
    if (orientation := images.orientation(img)) != 1:
        notes.append(f"EXIF orientation {orientation} -> upright")
    return notes


def prepare_one(rel: str, src_root: Path, dst_root: Path, settings: Settings) -> Result:
    """Resize (and convert where needed) one image, ``src_root / rel`` to ``dst_root / rel``."""
    src, dst = src_root / rel, dst_root / rel
    if not src.exists():
        return Result(rel, "problem", note="broken link (its target is gone)")
    result = Result(rel, "problem", bytes_in=src.stat().st_size)
    if dst.exists():  # renamed into place by an earlier run: finished
        result.status, result.bytes_out = "done", dst.stat().st_size
        with Image.open(src) as before, Image.open(dst) as after:
            result.size_in, result.size_out = before.size, after.size
        return result
    try:
        with images.open_image(str(src)) as img:
            result.size_in = img.size
            # the format dst's extension names (.JPEG -> JPEG): what its bytes must hold
            want = Image.registered_extensions().get(dst.suffix.lower(), "JPEG")
            notes = _conversions(img, want, src.suffix)
            size, box = settings.plan(*images.upright_size(img))
            dst.parent.mkdir(parents=True, exist_ok=True)  # sub-folders within a class
            if size == img.size and box is None and not notes:
                img.load()  # a verbatim copy must decode completely too
                _atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
                result.status, result.size_out = "copied", img.size
            else:
                images.draft(img, (2 * size[0], 2 * size[1]))  # JPEG: 1/2..1/8 scale, >= 2x left
                rgb = images.load_rgb(img)  # what both loaders make of it: upright RGB
                out = rgb.resize(size, Image.Resampling.LANCZOS)
                out = out.crop(box) if box else out
                save = dict(quality=settings.quality) if want in ("JPEG", "WEBP") else {}
                _atomic_write(dst, lambda tmp: out.save(tmp, format=want, **save))
                result.status, result.size_out = "resized", out.size
            result.note = "; ".join(notes)
    except Exception as e:  # PIL raises many types for broken files
        first = str(e).splitlines()[0] if str(e) else ""
        result.note = image_problem(str(src)) or f"cannot be prepared ({type(e).__name__}: {first})"
        return result
    result.bytes_out = dst.stat().st_size
    return result


def list_jobs(src: Path, dst: Path) -> tuple[list[str], list[Problem]]:
    """``(jobs, problems)``: every file (relative to ``src``) of every class folder of every split.
    Creates every class folder in ``dst``, even one whose files all fail: labels stay put."""
    jobs, problems = [], []
    for split in split_folders(src):
        if not (classes := class_folders(split)):
            problems.append(Problem(split, "no class folders"))
        for name in classes:
            (dst / (split / name).relative_to(src)).mkdir(parents=True, exist_ok=True)
            files = sorted(f for f in (split / name).rglob("*") if f.is_file() or f.is_symlink())
            if not files:
                problems.append(Problem(split / name, "empty class folder"))
            jobs += [f.relative_to(src).as_posix() for f in files]
    return jobs, problems


def _check_destination(src: Path, dst: Path, settings: Settings) -> None:
    """DST is new, empty, or an earlier (killed) run with the same settings and source."""
    if dst.resolve() == src.resolve() or dst.resolve().is_relative_to(src.resolve()):
        raise ConfigError(f"{dst} is inside {src}: pick a folder outside the source.")
    wanted = {"source": str(src.resolve()), **asdict(settings)}
    marker = dst / SETTINGS_FILE
    if marker.is_file():
        if (found := json.loads(marker.read_text())) != wanted:
            raise ConfigError(
                f"{dst} was prepared with {found}, not {wanted}. Rerun with the same source "
                f"and options to continue it, or pick a new DST."
            )
    elif dst.exists() and any(dst.iterdir()):
        raise ConfigError(f"{dst} exists and is not a `prepare` output: pick a new folder.")
    dst.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted, indent=1) + "\n")


def _run(work: Callable[[str], Result], jobs: list[str], workers: int) -> Iterable[Result]:
    if workers == 1:
        yield from map(work, jobs)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap_unordered(work, jobs, chunksize=8)


def prepare_tree(
    src: Path, dst: Path, settings: Settings, *, workers: int | None = None, progress: bool = True
) -> Summary:
    """Write the prepared copy of ``src`` (a root with train/ val/ [test/], or one split's
    class folders) to ``dst``; continue an earlier, interrupted run into the same ``dst``."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ConfigError(f"{src}: no such directory (SRC must hold class folders or splits).")
    workers = workers or len(os.sched_getaffinity(0))
    if workers < 1:
        raise ConfigError(f"--workers {workers} must be >= 1.")
    _check_destination(src, dst, settings)
    jobs, problems = list_jobs(src, dst)
    for part in dst.rglob(".*.part"):  # an earlier run's unfinished temporary files
        part.unlink(missing_ok=True)
    start = time.perf_counter()
    # done/total, elapsed time and an ETA, on stderr (stdout keeps the report)
    columns = ["prepare", rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), "ETA"]
    with rp.Progress(
        *columns, rp.TimeRemainingColumn(), console=Console(stderr=True), disable=not progress
    ) as bar:
        work = functools.partial(prepare_one, src_root=src, dst_root=dst, settings=settings)
        results = sorted(bar.track(_run(work, jobs, workers), total=len(jobs)), key=lambda r: r.rel)
    problems += [Problem(src / r.rel, r.note) for r in results if r.status == "problem"]
    return Summary(src, dst, time.perf_counter() - start, workers, results, problems)


def _mean_size(sizes: list[tuple[int, int]]) -> str:
    if not sizes:
        return "-"
    n = len(sizes)
    return f"{sum(w for w, _ in sizes) / n:.0f}x{sum(h for _, h in sizes) / n:.0f}"


def report(summary: Summary) -> str:
    """The converted files, the problems and the sizes before and after, for people."""
    ok = [r for r in summary.results if r.status != "problem"]
    count = Counter(r.status for r in summary.results)
    lines = [f"converted: {summary.src / r.rel}: {r.note}" for r in ok if r.note]
    lines += [f"not written: {p.path}: {p.reason}" for p in summary.problems]
    before, after = sum(r.bytes_in for r in ok), sum(r.bytes_out for r in ok)
    lines += [
        f"prepared {len(ok)} of {len(summary.results)} files of {summary.src} into {summary.dst} "
        f"in {summary.seconds:.1f} s ({summary.workers} workers): {count['resized']} "
        f"resized, {count['copied']} copied as they were, {count['done']} done "
        f"by an earlier run; {sum(bool(r.note) for r in ok)} converted, "
        f"{len(summary.problems)} problem(s)",
        f"before: {before / 1e6:,.1f} MB, mean {_mean_size([r.size_in for r in ok])} px",
        f"after:  {after / 1e6:,.1f} MB ({after / max(before, 1):.0%}), "
        f"mean {_mean_size([r.size_out for r in ok])} px",
    ]
    return "\n".join(lines)
