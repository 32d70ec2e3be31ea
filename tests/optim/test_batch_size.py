import pytest

from alexlab.config import ConfigError
from alexlab.optim.batch_size import accumulation_steps


@pytest.mark.parametrize(
    ("global_batch", "per_device", "world", "expected"),
    [
        (None, 256, 8, 1),
        (4096, 256, 1, 16),
        (4096, 256, 8, 2),
        (32768, 512, 64, 1),
        (512, 128, 2, 2),
    ],
)
def test_accumulation(global_batch, per_device, world, expected):
    got = accumulation_steps(
        global_batch_size=global_batch, batch_size=per_device, world_size=world
    )
    assert got == expected
    if global_batch:
        assert got * per_device * world == global_batch


def test_not_divisible_names_the_keys_and_a_fix():
    with pytest.raises(ConfigError, match=r"data.global_batch_size=1000 .* data.batch_size=250"):
        accumulation_steps(global_batch_size=1000, batch_size=256, world_size=2)


def test_linear_scaling_rule():
    from alexlab.optim.batch_size import scaled_lr

    assert scaled_lr(0.1, global_batch_size=8192) == pytest.approx(3.2)  # Goyal et al.: 0.1 x 32
    assert scaled_lr(2.0, global_batch_size=512, reference_batch_size=512) == 2.0


@pytest.mark.parametrize(("world", "accumulation"), [(1, 8), (2, 4), (8, 1)])
def test_derived_values_for_several_world_sizes(train_cfg, world, accumulation):
    from alexlab.train import derive_batch_and_lr

    cfg = train_cfg(
        "data.batch_size=64",
        "data.global_batch_size=512",
        "optimizer.lr=0.1",
        "scale_lr=true",
        "lr_reference_batch=256",
    )
    derived = derive_batch_and_lr(cfg, world_size=world)
    assert derived == {
        "world_size": world,
        "accumulation": accumulation,
        "global_batch_size": 512,
        "lr": pytest.approx(0.2),
    }
    cfg.scale_lr = False
    assert derive_batch_and_lr(cfg, world_size=world)["lr"] == 0.1
