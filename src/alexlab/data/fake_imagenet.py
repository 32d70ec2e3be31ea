"""ImageNet-shaped JPEG trees for benchmarks and tests (nothing is downloaded).

Each class gets its own palette and shape family; each image is a smooth two-colour gradient
with blurred shapes, noise and JPEG compression, so decoding and resizing cost what they cost on
ImageNet. ``sizes="typical"``: 400-599 x 300-449; ``"imagenet"``: ILSVRC-2012's spread (97% with
a longer side of 280-479, 3% at 1-5 MP) and grain at two scales, so a JPEG holds what an
ImageNet one does (112 KB on average at quality 90, against ILSVRC-2012's 108 KB; the smooth
``typical`` ones hold 19 KB, a fraction of a photo's entropy decoding). A quarter are portrait."""

from __future__ import annotations

import colorsys
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = ("typical", "imagenet")
LARGE_SHARE = 0.03  # `imagenet` sizes: the share of 1-5 megapixel images


def _image(rng: np.random.Generator, class_idx: int, num_classes: int, sizes: str) -> Image.Image:
    if sizes == "typical":
        w, h = int(rng.integers(400, 600)), int(rng.integers(300, 450))
    elif sizes == "imagenet":
        w = int(rng.integers(1000, 2600) if rng.random() < LARGE_SHARE else rng.integers(280, 480))
        h = int(w * rng.uniform(0.66, 1.0))
    else:
        raise ValueError(f"sizes={sizes!r} is unknown; valid: {', '.join(SIZES)}")
    if rng.random() < 0.25:
        w, h = h, w  # some portrait images, as in ImageNet
    hue = (class_idx / max(num_classes, 1) + rng.normal(0, 0.02)) % 1.0
    top = np.array(colorsys.hsv_to_rgb(hue, 0.6, 0.9)) * 255
    bottom = np.array(colorsys.hsv_to_rgb((hue + 0.15) % 1.0, 0.8, 0.4)) * 255
    t = np.linspace(0, 1, h)[:, None, None]
    pixels = (1 - t) * top + t * bottom + rng.normal(0, 6, (h, w, 3))  # (H, W, 3)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    shape = (draw.ellipse, draw.rectangle, draw.polygon)[class_idx % 3]
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        xy = [(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)] if class_idx % 3 == 2 else (x0, y0, x1, y1)
        shape(xy, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.0))))
    if sizes != "imagenet":
        return img
    grain = (
        rng.normal(0, 10, (h, w, 3))
        + rng.normal(0, 20, (-(-h // 2), -(-w // 2), 3)).repeat(2, 0).repeat(2, 1)[:h, :w]
    )  # per pixel and per 2x2 block: detail that JPEG keeps
    return Image.fromarray(np.clip(np.asarray(img) + grain, 0, 255).astype(np.uint8))


def write_fake_imagenet(
    root: Path,
    *,
    classes: int = 10,
    per_class: int = 20,
    val_per_class: int | None = None,
    seed: int = 0,
    quality: int = 90,
    sizes: str = "typical",
) -> Path:
    """Write ``root/{train,val}/nXXXXXXXX/*.JPEG`` and return ``root``. Built in a temporary
    folder and renamed into place, so an interrupted run leaves nothing half-written."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} exists; pick a new folder or remove it first")
    if sizes not in SIZES:
        raise ValueError(f"sizes={sizes!r} is unknown; valid: {', '.join(SIZES)}")
    val_per_class = max(1, per_class // 5) if val_per_class is None else val_per_class
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    try:
        for split, count in (("train", per_class), ("val", val_per_class)):
            for c in range(classes):
                folder = tmp / split / f"n{c:08d}"
                folder.mkdir(parents=True)
                for i in range(count):
                    name = f"{split}_{c:04d}_{i:05d}.JPEG"
                    _image(rng, c, classes, sizes).save(folder / name, quality=quality)
        tmp.rename(root)
    finally:  # a failure (or Ctrl-C) leaves no temporary folder behind
        shutil.rmtree(tmp, ignore_errors=True)
    return root
