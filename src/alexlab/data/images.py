"""The one image decoder: a file -> the upright 8-bit RGB picture every part of alexlab sees
(the torch loader, ``predict``, ``verify``, ``prepare``). Its rules (EXIF orientation, 16-bit
grey, transparency, a size limit read from the header) and how DALI agrees: docs/data.md, "One
image decoder"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import ExifTags, Image, ImageOps

# Images above this many pixels are refused before decoding, on both loaders, in predict and in
# `verify` (PIL's decompression-bomb limit; ImageNet's largest image has about 10M pixels).
MAX_IMAGE_PIXELS = 89_478_485
# EXIF orientations 5-8 are quarter turns: the upright picture has width and height swapped
QUARTER_TURNS = (5, 6, 7, 8)


class ImageError(ValueError):
    """Why a file cannot be used as an image (one line, without the path)."""


@contextmanager
def open_image(path: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[Image.Image]:
    """The image with only its header read, its size checked against ``max_pixels``.

    PIL's own process-wide limit (which refuses anything above twice its default whatever
    ``max_pixels`` says) is lifted for this open only: DataLoader workers are processes and
    DALI's checks run in the main thread."""
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        img = Image.open(path)
    except Exception as e:  # PIL raises many types for broken files
        raise ImageError(_first_line(e)) from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    with img:
        if img.width * img.height > max_pixels:
            raise ImageError(f"too large ({img.width}x{img.height} pixels, limit {max_pixels})")
        yield img


def _first_line(e: Exception) -> str:
    return f"corrupt or truncated ({(str(e) or type(e).__name__).splitlines()[0]})"


def orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1: upright as stored), read from the header."""
    return int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1)


def upright_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of the picture once EXIF orientation is applied (header only)."""
    return img.size[::-1] if orientation(img) in QUARTER_TURNS else img.size


def draft(img: Image.Image, upright_min: tuple[int, int]) -> float:
    """JPEG only: let libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling: far less work)
    while the upright picture stays at least ``upright_min`` (width, height). Returns the
    scale the picture will have (1.0 when nothing changes). Call before the pixels are read."""
    if img.format != "JPEG":
        return 1.0
    w, h = upright_min[::-1] if orientation(img) in QUARTER_TURNS else upright_min
    before = img.width
    img.draft("RGB", (max(1, int(w)), max(1, int(h))))  # keeps each side >= the size asked
    return img.width / before


def to_rgb(img: Image.Image) -> Image.Image:
    """Decoded pixels -> upright 8-bit RGB (the rules in the module docstring)."""
    ImageOps.exif_transpose(img, in_place=True)  # (not in place: a copy even when upright)
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit grey
        values = np.asarray(img, dtype=np.float64)  # (H, W), 16-bit range
        img = Image.fromarray(np.round(values.clip(0, 65535) / 257.0).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img if img.mode == "RGB" else img.convert("RGB")


def load_rgb(img: Image.Image) -> Image.Image:
    """Decode every byte of an opened image (truncation shows here) -> upright 8-bit RGB."""
    try:
        img.load()
        return to_rgb(img)
    except Exception as e:  # PIL raises many types for broken files
        raise ImageError(_first_line(e)) from None


def decode(path: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The whole picture, upright 8-bit RGB; ``ImageError`` says why it cannot be."""
    with open_image(path, max_pixels) as img:
        return load_rgb(img)


def image_problem(path: str, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why ``path`` cannot be used as an image, or None when it decodes completely."""
    try:
        decode(path, max_pixels)
    except ImageError as e:
        return str(e)
    return None
