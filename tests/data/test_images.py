"""The one image decoder: EXIF orientation, through both loaders, as DALI applies it."""

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image
from probe import fit

from alexlab.data import dali, images
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import FolderSource

LOADERS = ["torch"] + (["dali"] if dali.DALI_AVAILABLE else [])


def upright_picture(side: int = 64) -> np.ndarray:
    """(side, side, 3) uint8 with no symmetry a quarter turn keeps: a white top band, a red
    left band, a vertical ramp."""
    pixels = np.zeros((side, side, 3), np.uint8)
    pixels[:, :, 2] = np.linspace(0, 200, side, dtype=np.uint8)[:, None]
    pixels[: side // 4] = 255
    pixels[:, : side // 8] = (255, 0, 0)
    return pixels


def save_rotated(pixels: np.ndarray, path) -> None:
    """Stored sideways with EXIF Orientation 6 ("rotate 90 clockwise to view"), as phones do."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)


def write_trees(root, pixels):
    """``root/{rotated,upright}/{train,val}/c<i>/0.jpg``: the same picture, two ways."""
    for split in ("train", "val"):
        for c in range(2):
            for kind in ("rotated", "upright"):
                (root / kind / split / f"c{c}").mkdir(parents=True)
            save_rotated(pixels, root / "rotated" / split / f"c{c}" / "0.jpg")
            Image.fromarray(pixels).save(root / "upright" / split / f"c{c}" / "0.jpg", quality=95)
    return root / "rotated", root / "upright"


def test_the_decoder_turns_the_picture_upright(tmp_path):
    pixels = upright_picture()
    save_rotated(pixels, tmp_path / "r.jpg")
    with images.open_image(str(tmp_path / "r.jpg")) as img:
        assert img.size == (64, 64) and images.orientation(img) == 6
        decoded = np.asarray(images.load_rgb(img), dtype=np.float32)
    assert np.abs(decoded - pixels).mean() < 3  # JPEG's loss only
    assert np.abs(np.rot90(decoded) - pixels).mean() > 40  # not sideways


def test_draft_keeps_the_upright_size_asked_for(tmp_path):
    """A quarter-turned 200x100 JPEG (100x200 stored): asking >= 60x30 upright decodes at 1/2."""
    pixels = np.zeros((100, 200, 3), np.uint8)
    save_rotated(pixels, tmp_path / "r.jpg")
    with images.open_image(str(tmp_path / "r.jpg")) as img:
        assert images.upright_size(img) == (200, 100)
        assert images.draft(img, (60, 30)) == 0.5
        assert images.load_rgb(img).size == (100, 50)


@pytest.mark.parametrize("loader", LOADERS)
def test_an_exif_rotated_jpeg_reaches_the_module_upright(tmp_path, loader):
    """Train (whole-image crop) and val batches of the rotated tree equal the upright copy's, up
    to JPEG's loss; the same picture seen sideways differs by far more."""
    rotated, upright = write_trees(tmp_path, upright_picture())
    seen = {}
    for name, root in (("rotated", rotated), ("upright", upright)):
        dm = ImageDataModule(
            root=root,
            source=FolderSource,
            loader=loader,
            batch_size=2,
            num_workers=0,
            pin_memory=False,
            dali_threads=1,
            image_size=64,
            resize_size=64,
            scale=(1, 1),
            ratio=(1, 1),
            hflip_prob=0.0,
            mean=(0, 0, 0),
            std=(1, 1, 1),
        )
        probe = fit(dm)
        seen[name] = (probe.epoch(0)[0] * 255, probe.val_batches[0][0] * 255)  # (2, 3, 64, 64)
    for got, want in zip(seen["rotated"], seen["upright"], strict=True):
        assert (got - want).abs().mean() < 4
        assert (got.rot90(1, dims=(2, 3)) - want).abs().mean() > 40
    assert torch.equal(seen["rotated"][1][0], seen["rotated"][1][1])  # (control: deterministic)
