"""What a checkpoint carries beside Lightning's state is written by one callback, and each
rank's RNG is restored once the module sits on its final device."""

import json

import torch

from alexlab.module import ClassificationModule
from alexlab.run.checkpoint import open_checkpoint
from alexlab.train import train


def test_the_checkpoint_holds_alexlabs_state_under_one_key(train_cfg, tmp_path):
    summary = train(train_cfg("data.loader=torch", output_dir=tmp_path / "run"))
    raw = torch.load(summary["last_ckpt"], weights_only=True)
    extra = raw["alexlab"]
    assert extra["epochs_done"] == 1 and extra["epoch"] == 0 and extra["steps_into_epoch"] == 3
    assert extra["class_names"] == [str(d) for d in range(10)]
    assert extra["run_config"]["model"]["hidden"] == 32
    assert extra["run_config"]["derived"]["global_batch_size"] == 16
    assert len(extra["rng"]["per_rank"]) == 1
    assert "run_config" not in (raw.get("hyper_parameters") or {})  # the module keeps none
    assert open_checkpoint(summary["last_ckpt"]).epochs_trained == 1
    own = ClassificationModule.__dict__  # the module holds training logic only
    assert "on_save_checkpoint" not in own and "on_load_checkpoint" not in own


def test_the_rng_is_restored_after_the_module_reached_its_device(train_cfg, tmp_path):
    """Lightning calls on_load_checkpoint before the module moves to its device (a CUDA RNG
    state could not be set there); the restore happens in on_train_start, after on_fit_start,
    where the module sits on the strategy's root device."""
    out = tmp_path / "run"
    train(train_cfg("data.loader=torch", output_dir=out))
    probe = tmp_path / "order.json"
    train(
        train_cfg(
            "data.loader=torch",
            "trainer.max_epochs=2",
            "+callbacks.probe._target_=helper_callbacks.RngOrderProbe",
            f"+callbacks.probe.path={probe}",
            output_dir=out,
        )
    )
    assert json.loads(probe.read_text()) == [
        ["on_load_checkpoint", False, True],  # (on the CPU the device is the same throughout)
        ["on_fit_start", False, True],
        ["on_train_start", True, True],
    ]
