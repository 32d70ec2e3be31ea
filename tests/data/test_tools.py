"""python -m alexlab.data verify | fake-imagenet | prepare-imagenet"""

import pytest
from PIL import Image

from alexlab.data.__main__ import main
from alexlab.data.fake_imagenet import write_fake_imagenet


def test_fake_imagenet_writes_an_imagenet_shaped_tree(tmp_path):
    assert main(["fake-imagenet", str(tmp_path / "f"), "--classes", "3", "--per-class", "4"]) == 0
    train = sorted((tmp_path / "f" / "train").iterdir())
    assert [d.name for d in train] == ["n00000000", "n00000001", "n00000002"]
    img = Image.open(next(train[0].iterdir()))
    assert img.format == "JPEG" and min(img.size) >= 300 and max(img.size) <= 600
    assert len(list((tmp_path / "f" / "val").rglob("*.JPEG"))) == 3  # per-class / 5 -> 1
    assert main(["fake-imagenet", str(tmp_path / "f")]) == 2  # refuses to overwrite


def test_fake_imagenet_refuses_unknown_sizes_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="sizes='huge' is unknown; valid: typical, imagenet"):
        write_fake_imagenet(tmp_path / "f", sizes="huge")
    assert list(tmp_path.iterdir()) == []


def test_fake_imagenet_interrupted_leaves_no_partial_tree(tmp_path, monkeypatch):
    from alexlab.data import fake_imagenet

    made = []
    real = fake_imagenet._image

    def image_then_interrupt(*args):
        if len(made) == 3:
            raise KeyboardInterrupt  # Ctrl-C after three images were written
        made.append(1)
        return real(*args)

    monkeypatch.setattr(fake_imagenet, "_image", image_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_fake_imagenet(tmp_path / "f", classes=2, per_class=4)
    assert len(made) == 3 and list(tmp_path.iterdir()) == []


def test_verify_finds_every_planted_bad_file(tmp_path, capsys):
    root = tmp_path / "data"
    main(["fake-imagenet", str(root), "--classes", "2", "--per-class", "3"])
    assert main(["verify", str(root)]) == 0
    good = next((root / "train" / "n00000000").iterdir())
    planted = {
        root / "train" / "n00000000" / "truncated.JPEG": good.read_bytes()[:2000],
        root / "train" / "n00000001" / "empty.JPEG": b"",
        root / "train" / "n00000001" / "notes.txt": b"hello",
        root / "val" / "n00000000" / "garbage.jpg": b"\xff\xd8 not really a jpeg",
    }
    for path, data in planted.items():
        path.write_bytes(data)
    (root / "val" / "n00000002").mkdir()  # empty class folder
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    for path in planted:
        assert str(path) in out
    assert "empty class folder" in out and "5 problem(s)" in out  # 4 files + 1 folder


def test_prepare_imagenet_links_the_flat_val_folder(tmp_path):
    flat = tmp_path / "val_flat"
    flat.mkdir()
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3)]
    for name in names:
        Image.new("RGB", (8, 8)).save(flat / name)
    labels = tmp_path / "val.txt"
    labels.write_text("n01440764\nn01443537\nn01440764\n")
    out = tmp_path / "imagenet" / "val"
    assert main(["prepare-imagenet", str(flat), str(out), "--labels", str(labels)]) == 0
    linked = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.JPEG"))
    assert linked == [f"n01440764/{names[0]}", f"n01440764/{names[2]}", f"n01443537/{names[1]}"]
    assert all(p.is_symlink() for p in out.rglob("*.JPEG"))  # nothing copied
    labels.write_text("n01440764\n")
    assert main(["prepare-imagenet", str(flat), str(tmp_path / "x"), "--labels", str(labels)]) == 2


def test_missing_root(tmp_path):
    assert main(["verify", str(tmp_path / "nope")]) == 2
