"""python -m alexlab.data prepare: a resized, resumable copy of a class-folder tree."""

import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from subproc import kill_group, start

from alexlab.data.__main__ import main
from alexlab.data.fake_imagenet import write_fake_imagenet
from alexlab.data.sources import FolderSource, image_problem
from alexlab.train import train
from benchmarks.bench import main as bench_main

SIZES = [(120, 80), (60, 90), (40, 30), (150, 40)]  # (w, h): landscape, portrait, small, long


def gradient(w: int, h: int, seed: int) -> Image.Image:
    """A smooth image whose every region differs (so a shifted crop shows)."""
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    rgb = np.stack([x, y, (x + y) / 2 * (1 - seed / 10)], axis=-1) * 255  # (H, W, 3)
    return Image.fromarray(rgb.astype(np.uint8))


def tiny_tree(root: Path) -> Path:
    """root/{train,val}/{cat,dog,emu}/*.JPEG at the SIZES."""
    for split in ("train", "val"):
        for c, name in enumerate(("cat", "dog", "emu")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, (w, h) in enumerate(SIZES[: 4 if split == "train" else 2]):
                gradient(w, h, c + i).save(folder / f"{name}_{i}.JPEG", quality=95)
    return root


def images(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*.JPEG"))
        if not p.name.startswith(".")
    }


def rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize(
    "options",
    [
        ["--shorter-side", "32"],
        ["--shorter-side", "32", "--max-side", "40"],
        ["--paper", "--shorter-side", "32"],
    ],
)
def test_prepare_keeps_names_labels_counts_and_resizes_as_asked(tmp_path, options, capsys):
    src, dst = tiny_tree(tmp_path / "src"), tmp_path / "dst"
    assert main(["prepare", str(src), str(dst), "--workers", "2", *options]) == 0
    assert "0 problem(s)" in capsys.readouterr().out
    before, after = images(src), images(dst)
    assert list(after) == list(before)  # same names, same folders, same count
    assert FolderSource(dst).classes == FolderSource(src).classes == ["cat", "dog", "emu"]
    for rel, src_path in before.items():
        orig, out = Image.open(src_path), Image.open(after[rel])
        w, h = orig.size
        assert out.format == "JPEG" and out.mode == "RGB"
        if "--paper" in options:  # shorter side to 32 (enlarging if needed), central square
            scale = 32 / min(w, h)
            size = (round(w * scale), round(h * scale))
            left, top = (size[0] - 32) // 2, (size[1] - 32) // 2
            ref = orig.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            ref = ref.crop((left, top, left + 32, top + 32))
            assert out.size == (32, 32)
        else:
            scale = min(32 / min(w, h), 1.0)  # never enlarged: 40x30 stays
            if "--max-side" in options:
                scale = min(scale, 40 / max(w, h))
            ref = orig.convert("RGB").resize(
                (round(w * scale), round(h * scale)), Image.Resampling.LANCZOS
            )
            assert out.size == ref.size
            assert min(out.size) == min(32, min(w, h)) or max(out.size) == 40
        # the pixels are the reference resize's, up to JPEG noise (a misplaced crop is ~20)
        assert np.abs(rgb(out) - rgb(ref)).mean() < 4, rel


def test_a_killed_prepare_resumes_without_rewriting_finished_files(tmp_path, capsys):
    src = write_fake_imagenet(tmp_path / "src", classes=4, per_class=25, val_per_class=5)
    dst = tmp_path / "dst"
    cmd = [
        sys.executable,
        "-m",
        "alexlab.data",
        "prepare",
        str(src),
        str(dst),
        "--workers",
        "2",
        "--shorter-side",
        "200",
        "--no-progress",
    ]
    proc = start(cmd)
    try:
        deadline = time.monotonic() + 120
        while len(images(dst)) < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        kill_group(proc)  # SIGKILL to the run and its worker processes: no chance to clean up
        proc.wait()
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    finished = {rel: p.stat() for rel, p in images(dst).items()}
    assert 10 <= len(finished) < 120, "the run must be killed mid-way"

    assert main(["prepare", str(src), str(dst), "--workers", "1", "--shorter-side", "200"]) == 0
    assert f"{len(finished)} done by an earlier run" in capsys.readouterr().out
    after = images(dst)
    assert list(after) == list(images(src))  # complete now
    for rel, stat in finished.items():  # the earlier run's files were not touched
        now = after[rel].stat()
        assert (now.st_ino, now.st_mtime_ns, now.st_size) == (
            stat.st_ino,
            stat.st_mtime_ns,
            stat.st_size,
        )
    assert all(
        image_problem(str(p)) is None for p in after.values()
    )  # every file decodes completely
    assert not list(dst.rglob(".*.part"))  # no temporary file left
    assert main(["prepare", str(src), str(dst), "--workers", "1", "--shorter-side", "256"]) == 2


def test_bad_inputs_are_converted_or_reported(tmp_path, capsys):
    src = tiny_tree(tmp_path / "src")
    cat, dog = src / "train" / "cat", src / "train" / "dog"
    gradient(64, 48, 1).convert("CMYK").save(cat / "cmyk.JPEG")
    gradient(64, 48, 2).convert("L").save(cat / "gray.JPEG")
    gradient(64, 48, 3).save(dog / "png_inside.JPEG", format="PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turn 90 degrees clockwise to view (as DALI decodes)
    gradient(64, 48, 4).save(cat / "turned.JPEG", exif=exif, quality=95)
    (dog / "truncated.JPEG").write_bytes((cat / "cat_0.JPEG").read_bytes()[:600])
    (dog / "empty.JPEG").write_bytes(b"")
    (src / "val" / "emu" / "notes.txt").write_text("hello")
    dst = tmp_path / "dst"
    assert main(["prepare", str(src), str(dst), "--shorter-side", "32", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert f"converted: {cat / 'cmyk.JPEG'}: CMYK -> RGB" in out
    assert f"converted: {cat / 'gray.JPEG'}: L -> RGB" in out
    assert f"converted: {dog / 'png_inside.JPEG'}: PNG data in a .JPEG file -> JPEG" in out
    assert f"converted: {cat / 'turned.JPEG'}: EXIF orientation 6 -> upright" in out
    turned = Image.open(dst / "train" / "cat" / "turned.JPEG")
    assert turned.size == (32, 43) and not turned.getexif()  # 48x64 upright, shorter side 32
    upright = ImageOps.exif_transpose(Image.open(cat / "turned.JPEG")).resize((32, 43))
    assert np.abs(rgb(turned) - rgb(upright)).mean() < 4
    for bad in (dog / "truncated.JPEG", dog / "empty.JPEG", src / "val" / "emu" / "notes.txt"):
        assert f"not written: {bad}: {image_problem(str(bad))}" in out  # verify's reason
        assert not (dst / bad.relative_to(src)).exists()
    assert "3 problem(s)" in out
    for name, source in (
        ("cmyk", gradient(64, 48, 1).convert("CMYK")),
        ("gray", gradient(64, 48, 2).convert("L")),
        ("png_inside", None),
    ):
        folder = "dog" if name == "png_inside" else "cat"
        made = Image.open(dst / "train" / folder / f"{name}.JPEG")
        assert made.format == "JPEG" and made.mode == "RGB" and min(made.size) == 32
        ref = (source or gradient(64, 48, 3)).convert("RGB").resize(made.size)
        assert np.abs(rgb(made) - rgb(ref)).mean() < 6, name
    # a rerun skips what is done and reports the same problems again: nothing drops silently
    assert main(["prepare", str(src), str(dst), "--shorter-side", "32"]) == 1
    assert "3 problem(s)" in capsys.readouterr().out


def test_flat_ilsvrc_val_via_prepare_imagenet(tmp_path):
    flat, root = tmp_path / "val_flat", tmp_path / "imagenet"
    flat.mkdir()
    for i in range(3):
        gradient(90, 60, i).save(flat / f"ILSVRC2012_val_{i + 1:08d}.JPEG")
    (tmp_path / "val.txt").write_text("n01440764\nn01443537\nn01440764\n")
    assert (
        main(
            [
                "prepare-imagenet",
                str(flat),
                str(root / "val"),
                "--labels",
                str(tmp_path / "val.txt"),
            ]
        )
        == 0
    )
    for wnid in ("n01440764", "n01443537"):
        (root / "train" / wnid).mkdir(parents=True)
        gradient(80, 80, 0).save(root / "train" / wnid / f"{wnid}_1.JPEG")
    assert main(["prepare", str(root), str(tmp_path / "small"), "--shorter-side", "40"]) == 0
    made = images(tmp_path / "small")
    assert list(made) == list(images(root))
    assert made["val/n01440764/ILSVRC2012_val_00000003.JPEG"].is_file()
    assert not any(p.is_symlink() for p in made.values())  # real files, not links
    assert Image.open(made["val/n01443537/ILSVRC2012_val_00000002.JPEG"]).size == (60, 40)


def test_refuses_a_destination_inside_the_source_or_foreign(tmp_path):
    src = tiny_tree(tmp_path / "src")
    assert main(["prepare", str(src), str(src / "small")]) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main(["prepare", str(src), str(tmp_path / "other")]) == 2
    assert main(["prepare", str(src), str(tmp_path / "x"), "--paper", "--max-side", "300"]) == 2


def test_the_prepared_tree_trains(tmp_path, train_cfg):
    """A fit reads the prepared copy (in-process: the CLI's own tests start `python train.py`)."""
    src = write_fake_imagenet(tmp_path / "src", classes=3, per_class=6, val_per_class=2)
    dst = tmp_path / "prepared"
    assert main(["prepare", str(src), str(dst), "--shorter-side", "72", "--no-progress"]) == 0
    cfg = train_cfg(
        "data=folder",
        f"data.root={dst}",
        "model.widths=[8,16,16,16,16]",
        "model.hidden=32",
        "data.image_size=64",
        "data.resize_size=72",
        "data.batch_size=6",
        "data.num_workers=1",
        "data.dali_threads=1",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "++callbacks.progress_bar=null",
        tiny=False,
    )
    summary = train(cfg)
    assert summary["global_step"] == 3  # 18 prepared train images / batch 6
    assert 0 <= summary["metrics"]["val/acc1"] <= 1


def test_bench_data_compares_the_full_size_tree_with_its_prepared_copy(tmp_path, capsys):
    out = tmp_path / "BENCH.md"
    bench_main(
        [
            "--what",
            "prepared",
            "--runs",
            "1",
            "--warmup",
            "1",
            "--batches",
            "2",
            "--classes",
            "2",
            "--per-class",
            "6",
            "--cache",
            str(tmp_path),
            "--batch-size",
            "2",
            "--workers",
            "1",
            "--out",
            str(out),
        ]
    )
    report = out.read_text()
    assert "**Prepared copy.**" in report and "**Loaders.**" not in report
    copy = tmp_path / "fake-imagenet-c2-p6-imagenet-sizes-s256"
    assert all(min(Image.open(p).size) <= 256 for p in images(copy).values())
    rows = re.findall(
        r"^\| (\w+) \| (full-size|prepared): mean (\d+)x(\d+) px.*? \| (\d+) \(\d+\) "
        r"\| (\d+) \(\d+\) \| ([\d.]+)x \|$",
        report,
        flags=re.M,
    )
    assert [(crop, tree) for crop, tree, *_ in rows] == [
        ("random_resized", "full-size"),
        ("random_resized", "prepared"),
        ("paper", "full-size"),
        ("paper", "prepared"),
    ]
    for _, _, _, _, torch_rate, dali_rate, ratio in rows:  # DALI / torch, 2 decimals
        assert float(ratio) == ratio_of(dali_rate, torch_rate)
    (full_w, full_h), (prep_w, prep_h) = ((int(r[2]), int(r[3])) for r in rows[:2])
    assert prep_w * prep_h < full_w * full_h  # the copy is smaller
    gains = re.findall(
        r"^\| (\w+) \| prepared / full-size \| \*\*([\d.]+)x\*\* \| \*\*([\d.]+)x",
        report,
        flags=re.M,
    )
    for (crop, torch_gain, dali_gain), full, prep in zip(gains, rows[::2], rows[1::2], strict=True):
        assert crop == full[0] == prep[0]
        assert float(torch_gain) == ratio_of(prep[4], full[4])
        assert float(dali_gain) == ratio_of(prep[5], full[5])


def ratio_of(a: str, b: str):
    """a / b of two figures the table rounds to integers; the ratio it prints has 2 decimals."""
    a, b = int(a), int(b)
    rounding = (a / b) * (0.5 / a + 0.5 / b)  # from the integer medians
    return pytest.approx(a / b, rel=0, abs=rounding + 0.0051)  # plus the printed 2 decimals
