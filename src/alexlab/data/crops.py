"""The torch loader's views of one opened (header-only) image: decode no more than the crop needs.

The train crops follow torchvision's classification reference (``RandomResizedCrop`` on a PIL
image, then flip, then to a tensor), with the same distribution of crops, plus two savings:
1. the crop is cut and resized on the PIL image, in PIL's C code, before it becomes a tensor
   (only the crop's pixels are resampled);
2. JPEGs are decoded in draft mode: the area and aspect are sampled on the ORIGINAL size (read
   from the header, EXIF orientation applied), then libjpeg decodes at the largest 1/2, 1/4 or
   1/8 scale (DCT scaling) that still leaves the crop at least the output size, and the crop box
   is scaled to match. As DALI's region-of-interest decode, this changes the pixels a little
   (a DCT-domain downscale before the bilinear one), never which part of the picture is seen.
Evaluation decodes the whole image at full scale (exact, as DALI's eval pipeline).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import v2

from alexlab.data import images

if TYPE_CHECKING:
    from alexlab.data.augment import Augment


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL (W, H) -> uint8 (3, H, W), contiguous: the float ops after it and the batch
    collation run 1.5-2x faster on it than on the channels-last view of PIL's pixels."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _sample(width: int, height: int, scale: tuple, ratio: tuple) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` drawn by torchvision's own ``RandomResizedCrop.get_params`` from
    the global torch RNG (seeded per sample), for a ``width x height`` picture: a zero-copy
    (1, H, W) stand-in carries the size, which here comes from the header, not the pixels."""
    size_only = torch.empty(1, 1, 1).expand(1, height, width)
    return transforms.RandomResizedCrop.get_params(size_only, list(scale), list(ratio))


class TrainCrop:
    """Opened image -> uint8 (3, S, S): the train crop (``augment.crop``) and flip."""

    def __init__(self, augment: Augment) -> None:
        self.a = augment
        if augment.crop == "paper":  # shorter side to R, central R x R, random S x S (§4.1)
            self.paper = v2.Compose(
                [
                    v2.Resize(augment.resize_size),
                    v2.CenterCrop(augment.resize_size),
                    v2.RandomCrop(augment.image_size),
                ]
            )

    def __call__(self, img: Image.Image) -> torch.Tensor:
        out = self._random_resized(img) if self.a.crop == "random_resized" else self._paper(img)
        if self.a.hflip_prob > 0 and torch.rand(1) < self.a.hflip_prob:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(out)

    def _random_resized(self, img: Image.Image) -> Image.Image:
        s = self.a.image_size
        width, height = images.upright_size(img)
        top, left, h, w = _sample(width, height, self.a.scale, self.a.ratio)
        # each side of the whole picture at the scale where the crop is >= S x S
        images.draft(img, (math.ceil(width * s / w), math.ceil(height * s / h)))
        rgb = images.load_rgb(img)
        fx, fy = rgb.width / width, rgb.height / height  # 1, 1/2, 1/4 or 1/8
        box = (left * fx, top * fy, (left + w) * fx, (top + h) * fy)
        return rgb.resize((s, s), Image.Resampling.BILINEAR, box=box)

    def _paper(self, img: Image.Image) -> Image.Image:
        width, height = images.upright_size(img)
        r = self.a.resize_size / min(width, height)  # the shorter side must stay >= R
        images.draft(img, (math.ceil(width * r), math.ceil(height * r)))
        return self.paper(images.load_rgb(img))
