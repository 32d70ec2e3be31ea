"""The augmentation contract: one ``Augment`` built from the config, handed to both loaders.

Both crop on uint8 pixels; where the normalisation and the PCA lighting run (the device, or the
loader's threads on a CPU-only fit) and why: docs/data.md, "Two loaders".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2

# ImageNet channel statistics in [0, 1] (torchvision's references).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Principal components of ImageNet RGB pixel values in [0, 1] for the PCA colour ("lighting")
# noise of Krizhevsky et al. 2012 §4.1; the decomposition published with fb.resnet.torch.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


@dataclass(frozen=True)
class Augment:
    """Train and eval augmentation: the ``data.*`` keys of the same names, documented once in
    ``alexlab.config.schema.ImageData``. ``crop="paper"`` is Krizhevsky et al. 2012 §4.1:
    shorter side to ``resize_size``, central square, random ``image_size`` crop."""

    image_size: int = 224
    resize_size: int = 256
    crop: str = "random_resized"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_prob: float = 0.5
    lighting_std: float = 0.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("scale", "ratio", "mean", "std"):  # lists from YAML -> hashable tuples
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))

    def _resized(self, *then: Any) -> v2.Compose:
        """PIL image -> uint8 (3, H, W), shorter side ``resize_size`` -> ``then``."""
        return v2.Compose([v2.PILToTensor(), v2.Resize(self.resize_size, antialias=True), *then])

    def eval_transform(self) -> v2.Compose:
        """PIL image -> uint8 (3, S, S): shorter side to ``resize_size``, centre crop."""
        return self._resized(v2.CenterCrop(self.image_size))

    def normalise(self) -> Normalise:
        return Normalise(self.mean, self.std)

    def ten_crop_transform(self) -> v2.Compose:
        """PIL -> float (10, 3, S, S), normalised: 4 corner + centre crops and their mirror
        images (Krizhevsky et al. 2012 §4.1 test). ``Compose`` hands the tuple of 10 views to
        ``torch.stack`` whole (``v2.Lambda`` would apply it to each view separately)."""
        return self._resized(v2.TenCrop(self.image_size), torch.stack, self.normalise())


class Normalise:
    """uint8 (..., 3, S, S) -> float32 ``(x / 255 - mean) / std``, as one multiply-add in place
    on the float copy (5x less time than ``ToDtype`` + ``Normalize`` in a loader worker)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        std_255 = torch.tensor(std).view(3, 1, 1) * 255
        self.scale, self.shift = 1 / std_255, -torch.tensor(mean).view(3, 1, 1) * 255 / std_255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(torch.float32, copy=True).mul_(self.scale).add_(self.shift)


def eval_transform(
    *,
    image_size: int,
    resize_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """PIL image -> float (3, S, S), normalised: the eval view for single images (predict)."""
    augment = Augment(image_size=image_size, resize_size=resize_size, mean=mean, std=std)
    return v2.Compose([augment.eval_transform(), augment.normalise()])


def input_dtype(trainer: Any, default: torch.dtype) -> torch.dtype:
    """The dtype ``trainer``'s precision plugin gives floating inputs (its public
    ``convert_input``: that of the weights under ``*-true``), else ``default`` (32-true, the
    mixed precisions, no trainer). Lightning converts a batch before its transfer, when a GPU
    batch is still uint8 and left alone: the batch normalised on the device needs it here."""
    if trainer is None:
        return default
    wanted = trainer.precision_plugin.convert_input(torch.zeros(())).dtype
    return default if wanted == torch.float32 else wanted


class OnDevice:
    """A batch -> float normalised, with PCA lighting when training, in ``dtype`` (float16 for
    ``data.fp16``) unless a call names another. The constants go to each device once (a
    host->device copy per batch would make a GPU wait); the lighting draw uses the device's own
    generator (no host value is read)."""

    def __init__(self, augment: Augment, *, dtype: torch.dtype = torch.float32) -> None:
        self.lighting_std, self.dtype = augment.lighting_std, dtype
        normalise = augment.normalise()  # its (3, 1, 1) constants broadcast over a batch
        eigen = dict(eigval=torch.tensor(IMAGENET_EIGVAL), eigvec=torch.tensor(IMAGENET_EIGVEC))
        self._host = dict(scale=normalise.scale, shift=normalise.shift, **eigen)
        self._on: dict[torch.device, dict[str, torch.Tensor]] = {}

    def constants(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on:
            self._on[device] = {k: v.to(device) for k, v in self._host.items()}
        return self._on[device]

    def __call__(
        self,
        images: torch.Tensor,
        *,
        train: bool,
        normalised: bool = False,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """``images``: (B, 3, S, S) in 0..255 (uint8 or float), or ``normalised`` already (by the
        loader: only the lighting is added); memory format kept. Out in ``dtype`` (None: the
        one given at construction)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Batch should be (B, 3, H, W). Got shape {tuple(images.shape)}")
        c = self.constants(images.device)
        x = images.float()
        if not normalised:  # (x - mean) / std as a multiply-add in place: 2.4x less time
            x = (x if images.dtype == torch.uint8 else x.clone()).mul_(c["scale"]).add_(c["shift"])
        if train and self.lighting_std > 0:
            alpha = torch.randn(x.shape[0], 3, device=x.device) * self.lighting_std
            offsets = (alpha * c["eigval"]) @ c["eigvec"].T  # (B, 3): eigvec @ (alpha * eigval)
            # the offsets in 0..255 units (2012 §4.1), over std as the pixels are
            x = x + (255 * offsets.view(-1, 3, 1, 1)) * c["scale"]
        return x.to(dtype or self.dtype)
