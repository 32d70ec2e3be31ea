"""No training step that does not log reads a device value on the host (a GPU would wait).

Counted through ``train(cfg)`` with the default callbacks, progress bar and a real logger, over
two epochs (so the epoch-end and validation values are cached when the second epoch runs).
"""

import pytest
import sync_count

from alexlab.train import train

RUN = [
    "model.widths=[8,16,16,16,16]",
    "model.hidden=32",
    "data.image_size=64",
    "data.batch_size=16",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=10",
    "logger=csv",
    "+callbacks.step_syncs._target_=sync_count.StepSyncs",
]


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        (["trainer.limit_train_batches=16"], 32),  # 16 steps per epoch
        (["trainer.limit_train_batches=30", "data.global_batch_size=32"], 30),  # 2 micro-batches
    ],
    ids=["default", "accumulation"],
)
def test_no_host_sync_on_steps_that_do_not_log(train_cfg, overrides, steps):
    cfg = train_cfg(*RUN, *overrides, tiny=False)
    sync_count.WINDOWS.clear()
    with sync_count.COUNTER:
        summary = train(cfg)
    assert summary["global_step"] == steps
    windows = sync_count.WINDOWS
    assert len(windows) >= 30
    quiet = [w for w in windows if w["step"] % 10]
    logged = [w for w in windows if not w["step"] % 10]
    assert quiet and logged
    # before this was fixed: 1 per step up to the first logged step, 3 per step after it
    assert [w for w in quiet if w["syncs"]] == [], windows
    assert sum(w["syncs"] for w in logged) > 0  # the counter does see the logging steps' reads
