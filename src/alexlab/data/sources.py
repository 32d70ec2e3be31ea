"""Where samples come from: class-folder trees (ImageNet, any ImageFolder) and the embedded
``digits`` dataset, written once as a JPEG tree so the default run takes ImageNet's JPEG path.

A source checks its paths when it is built, before training starts. ``scan_split`` lists a
split once, with one set of rules for DALI, the torch loader and ``verify`` (docs/data.md,
"Two loaders")."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from alexlab.config import ConfigError, CorruptImageError, require_dir
from alexlab.data.images import MAX_IMAGE_PIXELS, image_problem

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def class_folders(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


class FolderSource:
    """A root with ``train/`` and ``val/`` (and optionally ``test/``) class-folder trees; the
    split names are the ``data.source.*`` settings (``alexlab.config.schema.FolderSource``)."""

    def __init__(
        self,
        root: str | Path | None,
        *,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str | None = None,
    ) -> None:
        hint = (
            "Pass data.root=/path/to/dataset holding train/ and val/ sub-folders, one folder per "
            "class (for data=imagenet, exporting IMAGENET_ROOT works too)."
        )
        self.root = require_dir(root, "data.root", hint)
        self.splits: dict[str, Path] = {}
        for name, sub in (("train", train_split), ("val", val_split), ("test", test_split)):
            if sub is None:
                continue
            split_dir = self.root / sub
            if not split_dir.is_dir():
                raise ConfigError(f"data.root={root} has no '{sub}/' folder. {hint}")
            if not class_folders(split_dir):
                raise ConfigError(f"{split_dir} has no class folders. {hint}")
            self.splits[name] = split_dir
        self.classes = class_folders(self.splits["train"])
        for split_dir in self.splits.values():
            if class_folders(split_dir) != self.classes:
                raise ConfigError(
                    f"{split_dir} and {self.splits['train']} hold different class folders; "
                    f"every split needs the same classes."
                )

    def split_dir(self, split: str) -> Path:
        return self.splits[split]

    @property
    def class_names(self) -> list[str]:
        """Human-readable name per class index (here: the folder names)."""
        return list(self.classes)


class ImageNetSource(FolderSource):
    """ILSVRC-2012 class folders named by WNID (``n01440764`` ...). Index ``i`` is the i-th
    WNID in sorted order, as in every ImageNet checkpoint; ``class_names`` are the human names
    from torchvision's bundled category list (same order)."""

    @property
    def class_names(self) -> list[str]:
        if len(self.classes) != 1000:
            return list(self.classes)
        from torchvision.models import AlexNet_Weights  # metadata only: nothing is downloaded

        return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


class DigitsSource(FolderSource):
    """scikit-learn's 1,797 8x8 handwritten digits (10 classes), written once as JPEGs under
    ``<root>/digits-s<seed>-v<val%>-<size>px`` (settings: ``alexlab.config.schema.DigitsSource``).

    The split is stratified and fixed by ``seed``; the tree is built in a temporary folder and
    renamed into place, so a crash never leaves half a cache and parallel ranks agree."""

    def __init__(
        self, root: str | Path, *, seed: int = 0, val_fraction: float = 0.2, size: int = 32
    ) -> None:
        root = Path(root).expanduser() / f"digits-s{seed}-v{round(val_fraction * 100)}-{size}px"
        if not root.is_dir():
            write_digits(root, seed=seed, val_fraction=val_fraction, size=size)
        super().__init__(root)


def write_digits(root: Path, *, seed: int, val_fraction: float, size: int) -> None:
    from sklearn.datasets import load_digits  # ships its data: no download

    images, labels = load_digits(return_X_y=True)  # (1797, 64) in 0..16, (1797,)
    rng = np.random.default_rng(seed)
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = round(len(idx) * val_fraction)
        for split, split_idx in (("val", idx[:n_val]), ("train", idx[n_val:])):
            out = tmp / split / str(label)
            out.mkdir(parents=True)
            for i in split_idx:
                pixels = (images[i].reshape(8, 8) * (255 / 16)).round().astype(np.uint8)
                img = Image.fromarray(pixels, mode="L").resize((size, size), Image.BICUBIC)
                img.save(out / f"{i:04d}.jpg", quality=95)
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(root)
    except OSError:  # another process finished first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Listing:
    """One split, scanned once: ``samples`` are ``(path, label)`` in a fixed (sorted) order."""

    samples: list[tuple[str, int]] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)  # no image extension
    empty_classes: list[str] = field(default_factory=list)


def scan_split(split_dir: Path, classes: list[str]) -> Listing:
    """List ``split_dir/<class>/**`` once (see the module docstring for the rules)."""
    listing, seen = Listing(), set()
    for label, name in enumerate(classes):
        before = len(listing.samples) + len(listing.empty_files)
        _walk(Path(split_dir) / name, label, listing, seen)
        if len(listing.samples) + len(listing.empty_files) == before:
            listing.empty_classes.append(str(Path(split_dir) / name))
    return listing


def _walk(folder: Path, label: int, listing: Listing, seen: set[str]) -> None:
    real = os.path.realpath(folder)
    if real in seen:
        raise ConfigError(
            f"{folder} leads to {real}, a folder already listed (a symlink loop, or a second "
            f"link to the same folder): remove that link."
        )
    seen.add(real)
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):  # .ipynb_checkpoints, .DS_Store, ...
                continue
            if entry.is_dir():
                _walk(Path(entry.path), label, listing, seen)
            elif not entry.is_file() or not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                listing.other_files.append(entry.path)
            elif entry.stat().st_size == 0:
                listing.empty_files.append(entry.path)
            else:
                listing.samples.append((entry.path, label))


def bad_files_error(problems: list[tuple[str, str]]) -> CorruptImageError:
    """One paragraph naming the files (both loaders say it the same way)."""
    named = "; ".join(f"{path}: {reason}" for path, reason in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return CorruptImageError(
        f"{named}{more}. Remove or replace them (`python -m alexlab.data verify ROOT` lists "
        f"all), or set data.skip_corrupt=true (skips and counts them; uses the torch loader)."
    )


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str


def split_folders(root: Path) -> list[Path]:
    """train/, val/, test/ under ``root``, or ``root`` itself (class folders directly in it)."""
    found = [root / s for s in ("train", "val", "test") if (root / s).is_dir()]
    return found or [root]


def verify_tree(root: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, list[Problem]]:
    """``(images checked, problems)`` for every split folder of ``root`` (``split_folders``)."""
    problems, checked = [], 0
    for split in split_folders(Path(root)):
        if not (classes := class_folders(split)):
            problems.append(Problem(split, "no class folders"))
            continue
        try:
            listing = scan_split(split, classes)
        except ConfigError as e:  # a symlink loop
            problems.append(Problem(split, str(e)))
            continue
        for paths, reason in (
            (listing.empty_classes, "empty class folder"),
            (listing.empty_files, "empty file"),
            (listing.other_files, "not an image file (extension)"),
        ):
            problems += [Problem(Path(p), reason) for p in paths]
        checked += len(listing.samples) + len(listing.empty_files)
        for path, _ in listing.samples:
            if reason := image_problem(path, max_pixels):
                problems.append(Problem(Path(path), reason))
    return checked, problems
