import json
from pathlib import Path

import pytest
import torch

from alexlab.config import ConfigError
from alexlab.evaluate import evaluate
from alexlab.train import train


@pytest.fixture
def trained(train_cfg, tmp_path) -> dict:
    return train(train_cfg("trainer.max_epochs=2", output_dir=tmp_path / "train"))


def test_eval_reproduces_the_trained_metrics_and_writes_eval_json(trained, eval_cfg, tmp_path):
    summary = evaluate(eval_cfg(trained["best_ckpt"], "trainer.limit_test_batches=2"))
    # same weights, same val images (limit 2 batches as in training): same accuracy
    assert summary["metrics"]["val/acc1"] == pytest.approx(trained["metrics"]["val/acc1"])
    written = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert written["metrics"] == summary["metrics"]
    # digits has no test split: the test stage read val, and says so
    assert written["split"] == "val" and set(written["metrics"]) == {
        "val/acc1",
        "val/acc5",
        "val/loss",
    }


def test_eval_refuses_a_class_count_mismatch(trained, eval_cfg, tmp_path, digits_root):
    seven = tmp_path / "seven"  # a 7-class folder tree made of digits 0..6
    for split in ("train", "val"):
        (seven / split).mkdir(parents=True)
        for c in range(7):
            (seven / split / str(c)).symlink_to(digits_root / split / str(c))
    cfg = eval_cfg(trained["last_ckpt"], "data=folder", f"data.root={seven}")
    with pytest.raises(ConfigError, match="data.num_classes=7 but .* trained with 10 classes"):
        evaluate(cfg)


def test_ten_crop_views_by_hand():
    from PIL import Image

    from alexlab.data.augment import Augment

    img = Image.new("RGB", (80, 64))
    img.paste((255, 0, 0), (0, 0, 40, 32))  # red top-left quadrant
    img.paste((0, 0, 255), (40, 0, 80, 32))  # blue top-right quadrant
    views = Augment(
        image_size=32, resize_size=64, mean=(0, 0, 0), std=(1, 1, 1)
    ).ten_crop_transform()(img)
    assert views.shape == (10, 3, 32, 32)
    assert views[0, 0].mean() == 1.0 and views[1, 2].mean() == 1.0  # top-left red, top-right blue
    torch.testing.assert_close(
        views[5], views[1].flip(-1)
    )  # flipped image's top-left = mirrored top-right


def test_ten_crop_accuracy_matches_a_hand_computation(trained, eval_cfg, digits_root):
    from PIL import Image

    from alexlab.data.augment import Augment
    from alexlab.run.checkpoint import open_checkpoint

    summary = evaluate(
        eval_cfg(trained["best_ckpt"], "ten_crop=true", "trainer.limit_test_batches=null")
    )
    assert summary["views"] == 10
    module = open_checkpoint(trained["best_ckpt"]).build_module().eval()
    tf = Augment(
        image_size=64, resize_size=64, mean=(0.5,) * 3, std=(0.5,) * 3
    ).ten_crop_transform()
    hits = total = 0
    for label, folder in enumerate(sorted((digits_root / "val").iterdir())):
        for path in sorted(folder.iterdir()):
            with torch.no_grad():
                probs = module(tf(Image.open(path).convert("RGB"))).softmax(1).mean(0)
            hits += int(probs.argmax()) == label
            total += 1
    assert summary["metrics"]["val/acc1"] == pytest.approx(hits / total, abs=1e-6)


def test_eval_a_torchvision_weight_file(eval_cfg, tmp_path, digits_root):
    import torchvision
    from PIL import Image

    from alexlab.data.augment import eval_transform

    torch.manual_seed(0)
    reference = torchvision.models.alexnet(num_classes=10).eval()
    weights = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), weights)
    summary = evaluate(
        eval_cfg(
            None, "model=alexnet_tv", f"model.weights={weights}", "trainer.limit_test_batches=null"
        )
    )
    tf = eval_transform(image_size=64, resize_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    hits = total = 0
    for label, folder in enumerate(sorted((digits_root / "val").iterdir())):
        batch = torch.stack([tf(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir())])
        with torch.no_grad():
            hits += int((reference(batch).argmax(1) == label).sum())
        total += len(batch)
    assert summary["metrics"]["val/acc1"] == pytest.approx(hits / total, abs=1e-6)
    assert summary["weights"] == str(weights)


def test_nothing_to_evaluate(eval_cfg):
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        evaluate(eval_cfg(None))


def test_eval_of_a_missing_or_truncated_checkpoint_leaves_no_directory(trained, eval_cfg, tmp_path):
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(Path(trained["last_ckpt"]).read_bytes()[:5000])
    for ckpt, message in (
        (tmp_path / "none.ckpt", "no such file"),
        (truncated, "is not a checkpoint"),
    ):
        cfg = eval_cfg(str(ckpt))
        out = Path(cfg.paths.output_dir)
        (out / ".hydra").mkdir(parents=True)  # what Hydra makes before the task runs
        with pytest.raises(ConfigError, match=message):
            evaluate(cfg)
        assert not out.exists()
