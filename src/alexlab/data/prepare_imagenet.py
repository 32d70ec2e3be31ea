"""Turn ILSVRC-2012's flat validation folder into class folders of links, without copying.

Labels come from the devkit tarball (``ILSVRC2012_devkit_t12.tar.gz``, read with torchvision's
parser) or a text file with one ``<filename> <wnid>`` or ``<wnid>`` line per image (in sorted
file order), e.g. a converted ``LOC_val_solution.csv`` or a ``val.txt``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from alexlab.config import ConfigError


def read_labels(labels_file: Path, images: list[Path]) -> dict[str, str]:
    """``{filename: wnid}`` from a ``<filename> <wnid>`` or ``<wnid>``-per-line text file."""
    lines = [ln.replace(",", " ").split() for ln in Path(labels_file).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln[0].lower().startswith(("imageid", "#"))]
    if all(len(ln) == 1 for ln in lines):
        if len(lines) != len(images):
            raise ConfigError(f"{labels_file} has {len(lines)} labels for {len(images)} images")
        return {img.name: ln[0] for img, ln in zip(images, lines, strict=True)}
    return {(ln[0] if "." in ln[0] else f"{ln[0]}.JPEG"): ln[1] for ln in lines}


def devkit_labels(devkit: Path, images: list[Path]) -> dict[str, str]:
    import torch
    from torchvision.datasets.imagenet import parse_devkit_archive  # reads meta.mat + gt file

    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(Path(devkit).resolve(), Path(tmp) / "ILSVRC2012_devkit_t12.tar.gz")
        parse_devkit_archive(tmp)
        _, val_wnids = torch.load(Path(tmp) / "meta.bin", weights_only=True)
    return {img.name: wnid for img, wnid in zip(images, val_wnids, strict=True)}


def prepare_val(
    val_dir: Path,
    out_dir: Path,
    *,
    labels: Path | None = None,
    devkit: Path | None = None,
    link: str = "symlink",
) -> int:
    """Create ``out_dir/<wnid>/<file>`` links to every image of the flat ``val_dir``, labelled
    by ``labels`` or ``devkit`` (the CLI takes exactly one)."""
    images = sorted(p for p in Path(val_dir).iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
    if not images:
        raise ConfigError(f"{val_dir} holds no .JPEG images")
    mapping = read_labels(labels, images) if labels else devkit_labels(devkit, images)
    if missing := [img.name for img in images if img.name not in mapping]:
        raise ConfigError(f"no label for {len(missing)} images, e.g. {missing[0]}")
    for img in images:
        target = Path(out_dir) / mapping[img.name] / img.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            (os.link if link == "hardlink" else os.symlink)(img.resolve(), target)
    return len(images)
