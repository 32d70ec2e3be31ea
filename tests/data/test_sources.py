import pytest
from PIL import Image

from alexlab.config import ConfigError
from alexlab.data import sources
from alexlab.data.sources import DigitsSource, FolderSource


def count(split_dir):
    return sum(1 for _ in split_dir.rglob("*.jpg"))


def test_digits_tree_is_written_once_as_jpegs(tmp_path):
    src = DigitsSource(tmp_path, seed=3, val_fraction=0.2)
    assert src.classes == [str(d) for d in range(10)]
    n_train, n_val = count(src.split_dir("train")), count(src.split_dir("val"))
    assert n_train + n_val == 1797  # every scikit-learn digit, once
    assert n_val == pytest.approx(0.2 * 1797, abs=10)  # stratified per class
    img = Image.open(next(src.split_dir("val").rglob("*.jpg")))
    assert img.format == "JPEG" and img.size == (32, 32)
    assert not list(tmp_path.glob("*.tmp-*"))  # the temporary build folder was renamed away


def test_digits_cache_is_reused(tmp_path, monkeypatch):
    first = DigitsSource(tmp_path)
    stamp = next(first.split_dir("train").rglob("*.jpg")).stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(sources, "write_digits", fail)
    second = DigitsSource(tmp_path)
    assert second.root == first.root
    assert next(second.split_dir("train").rglob("*.jpg")).stat().st_mtime_ns == stamp


def test_same_seed_same_split(tmp_path):
    a = DigitsSource(tmp_path / "a", seed=1)
    b = DigitsSource(tmp_path / "b", seed=1)
    names = lambda s: sorted(p.name for p in s.split_dir("val").rglob("*.jpg"))  # noqa: E731
    assert names(a) == names(b)


def make_tree(root, layout):
    for split, classes in layout.items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / split / c / "x.jpg")
    return root


def test_folder_source_lists_classes(tmp_path):
    root = make_tree(tmp_path, {"train": ["cat", "dog"], "val": ["cat", "dog"]})
    assert FolderSource(root).classes == ["cat", "dog"]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (None, "data.root=.*no such directory"),
        ({"val": ["a"]}, "has no 'train/' folder"),
        ({"train": [], "val": ["a"]}, "has no class folders"),
        ({"train": ["a", "b"], "val": ["a"]}, "different class folders"),
    ],
)
def test_folder_source_errors(tmp_path, layout, message):
    root = tmp_path / "data"
    for split, classes in (layout or {}).items():
        (root / split).mkdir(parents=True)
        make_tree(root, {split: classes})
    with pytest.raises(ConfigError, match=message):
        FolderSource(root)


def test_unset_root():
    with pytest.raises(ConfigError, match="data.root is not set"):
        FolderSource(None)


def test_imagenet_names_follow_sorted_wnids(tmp_path):
    from alexlab.data.sources import ImageNetSource

    wnids = [f"n{i:08d}" for i in range(1000)]
    for split in ("train", "val"):
        for w in wnids:
            (tmp_path / split / w).mkdir(parents=True)
    source = ImageNetSource(tmp_path)
    assert source.classes[0] == "n00000000"
    names = source.class_names
    assert len(names) == 1000 and names[0] == "tench" and names[-1] == "toilet tissue"
