"""Each bad tree gives the same, named outcome on both loaders and in `verify`: one scan, one
file list, one set of image checks."""

import os

import pytest
from PIL import Image
from probe import fit

from alexlab.config import ConfigError, CorruptImageError
from alexlab.data import dali, sources
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import FolderSource, verify_tree

LOADERS = ["torch"] + (["dali"] if dali.DALI_AVAILABLE else [])


def tree(root, *, per_class=3):
    for split in ("train", "val"):
        for c in ("a", "b", "c"):
            (root / split / c).mkdir(parents=True)
            for j in range(per_class):
                Image.new("RGB", (16, 16), (40 * j, 80, 120)).save(root / split / c / f"{j}.jpg")
    return root


def module(root, loader, **kwargs):
    return ImageDataModule(
        root=root,
        source=FolderSource,
        loader=loader,
        batch_size=3,
        num_workers=0,
        pin_memory=False,
        dali_threads=1,
        image_size=16,
        resize_size=16,
        **kwargs,
    )


def outcome(root, loader, **kwargs):
    """What a fit on this tree does: its labels, or the error it stops with."""
    try:
        probe = fit(module(root, loader, **kwargs))
    except (ConfigError, CorruptImageError) as e:
        return type(e).__name__, str(e)
    return "ok", sorted(probe.epoch(0)[1].tolist())


def test_a_hidden_folder_is_skipped_by_everyone(tmp_path):
    root = tree(tmp_path)
    for hidden in (root / "train" / ".ipynb_checkpoints", root / "train" / "a" / ".cache"):
        hidden.mkdir()
        Image.new("RGB", (16, 16)).save(hidden / "x.jpg")
    (root / "train" / "b" / ".DS_Store").write_bytes(b"junk")
    outcomes = {loader: outcome(root, loader) for loader in LOADERS}
    assert all(o == ("ok", [0, 0, 0, 1, 1, 1, 2, 2, 2]) for o in outcomes.values()), outcomes
    assert verify_tree(root) == (18, [])


def test_a_symlink_loop_is_refused_by_everyone(tmp_path):
    root = tree(tmp_path)
    (root / "train" / "a" / "again").symlink_to(root / "train" / "a")
    outcomes = {outcome(root, loader) for loader in LOADERS}
    assert len(outcomes) == 1  # the same error on both loaders
    kind, message = outcomes.pop()
    assert kind == "ConfigError" and f"{root}/train/a/again leads to" in message
    assert "a symlink loop" in message
    _, problems = verify_tree(root)
    assert [p.path.name for p in problems] == ["train"] and "symlink loop" in problems[0].reason


def test_an_empty_class_folder_is_named_by_everyone(tmp_path):
    root = tree(tmp_path)
    for f in (root / "train" / "b").iterdir():
        f.unlink()
    outcomes = {outcome(root, loader) for loader in LOADERS}
    assert len(outcomes) == 1, outcomes
    kind, message = outcomes.pop()
    assert kind == "ConfigError" and f"no image: {root}/train/b. Every class needs" in message
    _, problems = verify_tree(root)
    assert [(p.path, p.reason) for p in problems] == [(root / "train" / "b", "empty class folder")]


@pytest.mark.parametrize(
    ("plant", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"\xff\xd8 not a jpeg"), "corrupt or truncated"),
        (lambda p: Image.new("RGB", (40, 30)).save(p), "too large (40x30 pixels, limit 1000)"),
    ],
    ids=["zero-byte", "garbage", "oversized"],
)
def test_an_unusable_file_is_named_the_same_way_by_everyone(tmp_path, plant, reason):
    root = tree(tmp_path)
    bad = root / "train" / "c" / "zz_bad.jpg"
    plant(bad)
    outcomes = {outcome(root, loader, max_image_pixels=1000) for loader in LOADERS}
    assert len(outcomes) == 1, outcomes  # word for word the same on both loaders
    kind, message = outcomes.pop()
    assert kind == "CorruptImageError" and message.startswith(f"{bad}: {reason}")
    assert "data.skip_corrupt=true" in message
    _, problems = verify_tree(root, max_pixels=1000)
    assert [p.path for p in problems] == [bad] and problems[0].reason.startswith(reason)


def test_the_split_is_listed_once_per_fit(tmp_path, monkeypatch):
    root = tree(tmp_path)
    scans = []
    real = sources.scan_split
    monkeypatch.setattr(sources, "scan_split", lambda d, c: scans.append(d.name) or real(d, c))
    for loader in LOADERS:
        scans.clear()
        fit(module(root, loader), epochs=3)  # 3 train epochs, a sanity check and 3 validations
        assert sorted(scans) == ["train", "val"], loader


def test_skip_corrupt_leaves_empty_files_out(tmp_path):
    root = tree(tmp_path)
    (root / "train" / "a" / "zz_empty.jpg").write_bytes(b"")
    probe = fit(module(root, "torch", skip_corrupt=True))
    assert sorted(probe.epoch(0)[1].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert os.path.getsize(root / "train" / "a" / "zz_empty.jpg") == 0


def header_bomb(path, side=20_000):
    """A white 16x16 JPEG whose header (SOF0) claims ``side`` x ``side`` pixels."""
    Image.new("RGB", (16, 16), (255, 255, 255)).save(path, quality=95)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))


@pytest.mark.skipif(not dali.DALI_AVAILABLE, reason="NVIDIA DALI is not installed")
@pytest.mark.parametrize("pipeline", ["train_pipeline", "eval_pipeline"])
def test_dali_never_decodes_an_image_its_header_says_is_too_large(tmp_path, pipeline):
    """The pixel limit is checked on the header, before the decoder: the bomb's bytes are
    swapped for a black stand-in (a decode of them would give white or grey, and 1.2 GB)."""
    from alexlab.data.augment import Augment

    root = tree(tmp_path, per_class=1)
    bomb = root / "train" / "b" / "0.jpg"  # (3 images: one batch, every image read)
    header_bomb(bomb)
    files = [str(root / "train" / "a" / "0.jpg"), str(bomb)]
    extra = dict(fast_idct=True) if pipeline == "train_pipeline" else {}
    pipe = getattr(dali, pipeline)(
        files=files,
        labels=[0, 1],
        gpu=False,
        uint8=True,
        augment=Augment(image_size=16, resize_size=16),
        hw_decoder_load=0.0,
        channels_last=False,
        max_pixels=sources.MAX_IMAGE_PIXELS,
        batch_size=2,
        num_threads=1,
        device_id=None,
        **extra,
    )
    pipe.build()
    images, _, too_large = (out.as_array() for out in pipe.run())
    assert too_large.reshape(-1).tolist() == [False, True]
    assert images[0].mean() > 20 and images[1].max() <= 2  # decoded; the stand-in (black)
    for loader in LOADERS:  # and a fit refuses it by name, as PIL refuses a decompression bomb
        kind, message = outcome(root, loader)
        assert kind == "CorruptImageError", (loader, message)
        assert message.startswith(f"{bomb}: too large (20000x20000 pixels, limit 89478485)")
