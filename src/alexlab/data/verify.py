"""Find what would break a training run in a class-folder tree, before it starts: the same scan
and the same image checks as the loaders (``sources.scan_split``, ``sources.image_problem``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alexlab.checks import ConfigError
from alexlab.data.sources import MAX_IMAGE_PIXELS, class_folders, image_problem, scan_split


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str


def verify_tree(root: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, list[Problem]]:
    """``(images checked, problems)`` for every split folder under ``root`` (or ``root`` itself
    when it holds class folders directly)."""
    root = Path(root)
    splits = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train", "val", "test")]
    problems: list[Problem] = []
    checked = 0
    for split in splits or [root]:
        classes = class_folders(split)
        if not classes:
            problems.append(Problem(split, "no class folders"))
            continue
        try:
            listing = scan_split(split, classes)
        except ConfigError as e:  # a symlink loop
            problems.append(Problem(split, str(e)))
            continue
        problems += [Problem(Path(p), "empty class folder") for p in listing.empty_classes]
        problems += [Problem(Path(p), "empty file") for p in listing.empty_files]
        problems += [Problem(Path(p), "not an image file (extension)") for p in listing.other_files]
        checked += len(listing.samples) + len(listing.empty_files)
        for path, _ in listing.samples:
            if reason := image_problem(path, max_pixels):
                problems.append(Problem(Path(path), reason))
    return checked, problems
