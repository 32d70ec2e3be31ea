import pytest

from alexlab.checks import ConfigError
from alexlab.optim.batch_size import accumulation_steps


@pytest.mark.parametrize(
    ("global_batch", "per_device", "world", "expected"),
    [(None, 256, 8, 1), (4096, 256, 1, 16), (4096, 256, 8, 2), (32768, 512, 64, 1),
     (512, 128, 2, 2)],
)  # fmt: skip
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
