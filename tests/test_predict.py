import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import ExifTags, Image
from subproc import side_by_side

from alexlab.config import CONF_DIR, ConfigError
from alexlab.data.augment import eval_transform
from alexlab.data.images import to_rgb
from alexlab.predict import pick_device, predict
from alexlab.run.checkpoint import open_checkpoint
from alexlab.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    from conftest import TINY, compose_config  # noqa: PLC0415 (module-scoped: compose directly)

    out = tmp_path_factory.mktemp("predict")
    cfg = compose_config(
        "train",
        [*TINY, "trainer.max_epochs=2", "logger=none"],
        output_dir=out / "run",
        cache_dir=cache_dir,  # the session's digits tree: generating one takes seconds
    )
    cfg.data.num_workers = 0
    return train(cfg), cfg


def predict_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "alexlab.predict", *args]


URL = "https://example.com/cat.jpg"


@pytest.fixture(scope="module")
def folder_run(trained, tmp_path_factory):
    """One `python -m alexlab.predict` over a folder that holds every case the tests below
    read: 3 digits, a text file, a truncated JPEG, an 8-bit PNG and its 16-bit twin, and an
    image over `max_image_pixels` (one CLI start instead of four: ~10 s each here); beside it,
    the refusal of a URL (test_urls_and_absent_devices_are_refused_in_one_line)."""
    summary, cfg = trained
    tmp = tmp_path_factory.mktemp("predict-cli")
    folder = tmp / "inputs"
    folder.mkdir()
    images = sorted(next(Path(cfg.data.root).glob("digits-*/val/3")).iterdir())[:3]
    for img in images:
        shutil.copy(img, folder / img.name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(images[0].read_bytes()[:300])
    grey = np.asarray(Image.open(images[0]).convert("L"))  # 32x32: 1,024 px
    Image.fromarray(grey).save(folder / "z8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "z16.png")
    Image.new("RGB", (64, 64)).save(folder / "zbig.png")  # 4,096 px: over 2x the limit
    digit = Image.open(images[0]).convert("RGB")  # a phone photo's case: stored sideways + EXIF
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 clockwise to view"
    digit.transpose(Image.Transpose.ROTATE_90).save(folder / "rot6.jpg", quality=95, exif=exif)
    digit.save(folder / "upright.jpg", quality=95)
    ckpt = f"ckpt_path={summary['best_ckpt']}"
    with side_by_side() as launch:
        done = launch(
            predict_cmd(
                ckpt,
                f"input={folder}",
                "format=json",
                "topk=3",
                "show_all_probs=true",
                "max_image_pixels=2000",
            ),
            cwd=tmp,
        )
        url = launch(predict_cmd(ckpt, f"input={URL}"), cwd=tmp)
    result = done.result()
    assert result.returncode == 0, result.stderr[-2000:]
    return images, json.loads(result.stdout), url.result()


def test_predict_a_folder_as_json(trained, folder_run):
    summary, cfg = trained
    images, out, _ = folder_run
    names = [p.name for p in images] + ["rot6.jpg", "upright.jpg", "z16.png", "z8.png"]
    assert [Path(r["file"]).name for r in out["results"]] == names
    first = out["results"][0]
    assert len(first["top"]) == 3 and set(first["probs"]) == {str(d) for d in range(10)}
    assert sum(first["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert {Path(s["file"]).name for s in out["skipped"]} == {"notes.txt", "broken.jpg", "zbig.png"}

    # the same numbers by hand: the checkpoint's network on the run's eval transform
    module = open_checkpoint(summary["best_ckpt"]).build_module().eval()
    tf = eval_transform(
        image_size=cfg.data.image_size,
        resize_size=cfg.data.resize_size,
        mean=cfg.data.mean,
        std=cfg.data.std,
    )
    with torch.no_grad():
        probs = torch.softmax(module(tf(Image.open(images[0]).convert("RGB"))[None]), dim=1)[0]
    assert first["top"][0]["index"] == int(probs.argmax())
    assert first["top"][0]["prob"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_decompression_bombs_are_refused(folder_run):
    _, out, _ = folder_run
    (big,) = [s for s in out["skipped"] if Path(s["file"]).name == "zbig.png"]
    assert big["reason"] == "too large (64x64 pixels, limit 2000)"  # from the header


def test_an_exif_rotated_photo_is_classified_upright(folder_run):
    _, out, _ = folder_run
    by_name = {Path(r["file"]).name: r for r in out["results"]}
    rotated, upright = by_name["rot6.jpg"], by_name["upright.jpg"]
    assert rotated["top"][0]["index"] == upright["top"][0]["index"]
    for name, prob in upright["probs"].items():  # JPEG's loss only
        assert rotated["probs"][name] == pytest.approx(prob, abs=0.05)


def test_missing_input_is_a_clear_error(trained, tmp_path):
    """In-process (a CLI start is ~10 s): the CLI's exit 2 and one-line output for predict's
    ConfigErrors are the URL test's below."""
    summary, _ = trained
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "predict", [f"ckpt_path={summary['best_ckpt']}", f"input={tmp_path / 'nope'}"]
        )
    with pytest.raises(ConfigError) as refused:
        predict(cfg)
    assert str(refused.value) == (
        f"input={tmp_path / 'nope'}: no such file or directory. Pass an image or a folder of "
        "images."
    )


def test_16_bit_and_transparent_images_read_as_training_saw_them():
    grey = np.arange(0, 256, dtype=np.uint8).repeat(4).reshape(32, 32)  # every 8-bit level
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)  # the same levels, 0-65535
    assert sixteen.mode.startswith("I")
    assert np.array_equal(
        np.asarray(to_rgb(sixteen)), np.asarray(Image.fromarray(grey).convert("RGB"))
    )
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: kept
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: the white it is shown on
    rgba[1, 0] = (0, 0, 0, 128)  # half: halfway to white
    out = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [127, 127, 127]


def test_16_bit_png_is_classified_like_its_8_bit_twin(folder_run):
    _, out, _ = folder_run
    sixteen, eight = out["results"][-2:]  # z16.png, z8.png
    assert eight["probs"] == sixteen["probs"]


def test_urls_and_absent_devices_are_refused_in_one_line(folder_run):
    _, _, result = folder_run  # python -m alexlab.predict ckpt_path=... input=URL
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "alexlab: config error: input=https://example.com/cat.jpg: predict reads local files "
        "only, not URLs. Download it first (e.g. curl -O 'https://example.com/cat.jpg') and pass "
        "the file or its folder."
    ]
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device=cuda but 0 CUDA GPU"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match="device=cuda:99 but"):
        pick_device("cuda:99")
    with pytest.raises(ConfigError, match="device=gpu0 is not a device"):
        pick_device("gpu0")
