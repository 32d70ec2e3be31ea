"""The torch loader's views of one opened (header-only) image: decode no more than the crop needs.

The train crops follow torchvision's classification reference (``RandomResizedCrop`` on a PIL
image, then flip, then to a tensor), with the same distribution of crops, cut and resized on the
PIL image and, for a JPEG, decoded in draft mode (DCT scaling: the pixels change a little, never
which part of the picture is seen): docs/data.md, "What the torch loader does to be fast".
Evaluation decodes the whole image at full scale (exact, as DALI's eval pipeline).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import v2

from alexlab.data import images
from alexlab.data.augment import Augment


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL (W, H) -> uint8 (3, H, W), contiguous: the float ops after it and the batch
    collation run 1.5-2x faster on it than on the channels-last view of PIL's pixels."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class TrainCrop:
    """Opened image -> uint8 (3, S, S): the train crop (``augment.crop``) and flip."""

    def __init__(self, augment: Augment) -> None:
        self.a, r = augment, augment.resize_size
        # paper: shorter side to R, central R x R, random S x S (2012 §4.1)
        self.paper = v2.Compose([v2.Resize(r), v2.CenterCrop(r), v2.RandomCrop(augment.image_size)])

    def __call__(self, img: Image.Image) -> torch.Tensor:
        out = self._random_resized(img) if self.a.crop == "random_resized" else self._paper(img)
        if self.a.hflip_prob > 0 and torch.rand(1) < self.a.hflip_prob:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(out)

    def _random_resized(self, img: Image.Image) -> Image.Image:
        s = self.a.image_size
        width, height = images.upright_size(img)
        # torchvision's own draw from the global torch RNG (seeded per sample); the size comes
        # from the header, not the pixels: a zero-copy (1, H, W) stand-in carries it
        size_only = torch.empty(1, 1, 1).expand(1, height, width)
        scale, ratio = list(self.a.scale), list(self.a.ratio)
        top, left, h, w = transforms.RandomResizedCrop.get_params(size_only, scale, ratio)
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
