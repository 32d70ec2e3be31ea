import json

import pytest

from alexlab.checks import ConfigError
from alexlab.evaluate import evaluate
from alexlab.train import train


@pytest.fixture
def trained(train_cfg, tmp_path) -> dict:
    return train(train_cfg("trainer.max_epochs=2", output_dir=tmp_path / "train"))


def test_eval_reproduces_the_trained_metrics_and_writes_eval_json(trained, eval_cfg, tmp_path):
    summary = evaluate(eval_cfg(trained["best_ckpt"], "trainer.limit_test_batches=2"))
    # same weights, same val images (limit 2 batches as in training): same accuracy
    assert summary["metrics"]["test/acc1"] == pytest.approx(trained["metrics"]["val/acc1"])
    written = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert written["metrics"] == summary["metrics"]


def test_eval_refuses_a_class_count_mismatch(trained, eval_cfg, tmp_path, digits_root):
    seven = tmp_path / "seven"  # a 7-class folder tree made of digits 0..6
    for split in ("train", "val"):
        (seven / split).mkdir(parents=True)
        for c in range(7):
            (seven / split / str(c)).symlink_to(digits_root / split / str(c))
    cfg = eval_cfg(trained["last_ckpt"], "data=folder", f"data.root={seven}")
    with pytest.raises(ConfigError, match="data.num_classes=7 but .* trained with 10 classes"):
        evaluate(cfg)
