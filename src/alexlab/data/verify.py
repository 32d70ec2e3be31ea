"""Find what would break a training run in a class-folder tree, before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from alexlab.data.sources import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str


def check_image(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image, or None if it decodes completely."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file (extension)"
    if path.stat().st_size == 0:
        return "empty file"
    try:
        with Image.open(path) as img:
            img.verify()  # structure
        with Image.open(path) as img:
            img.load()  # every byte: catches truncation
    except Exception as e:  # PIL raises many types for broken files
        return (
            f"corrupt or truncated ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        )
    return None


def verify_tree(root: Path) -> tuple[int, list[Problem]]:
    """``(images checked, problems)`` for every split folder under ``root`` (or ``root`` itself
    when it holds class folders directly)."""
    root = Path(root)
    splits = [
        d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train", "val", "test")
    ]
    problems: list[Problem] = []
    checked = 0
    for split in splits or [root]:
        class_dirs = [d for d in sorted(split.iterdir()) if d.is_dir()]
        if not class_dirs:
            problems.append(Problem(split, "no class folders"))
        for class_dir in class_dirs:
            files = [f for f in sorted(class_dir.rglob("*")) if f.is_file()]
            if not files:
                problems.append(Problem(class_dir, "empty class folder"))
            for f in files:
                checked += 1
                reason = check_image(f)
                if reason:
                    problems.append(Problem(f, reason))
    return checked, problems
