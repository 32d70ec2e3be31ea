import io
import math

import pytest
import torch

from alexlab.config import ConfigError, validate_section
from alexlab.optim.schedules import WarmupSchedule, warmup_lr_scheduler


def test_warmup_is_linear_then_hands_over():
    s = WarmupSchedule(kind="constant", total_steps=100, warmup_steps=10)
    assert s(0) == pytest.approx(0.1)  # (0 + 1) / 10
    assert s(4) == pytest.approx(0.5)
    assert s(9) == pytest.approx(1.0)  # the last warmup step reaches the base lr
    assert s(50) == 1.0


def test_cosine_closed_form():
    s = WarmupSchedule(kind="cosine", total_steps=110, warmup_steps=10, min_factor=0.1)
    assert s(10) == pytest.approx(1.0)  # end of warmup: full lr
    assert s(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way: cos(pi/2) = 0
    assert s(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert s(110) == pytest.approx(0.1)  # last step: the floor


def test_poly_power2_closed_form():
    # You et al. 2017: lr = base * (1 - p)^2 after warmup
    s = WarmupSchedule(kind="poly", total_steps=105, warmup_steps=5, power=2.0)
    assert s(5) == pytest.approx(1.0)
    assert s(55) == pytest.approx(0.25)  # (1 - 0.5)^2
    assert s(30) == pytest.approx(0.75**2)
    assert s(105) == pytest.approx(0.0)


def test_step_divides_by_ten_at_each_milestone():
    s = WarmupSchedule(kind="step", total_steps=100, milestones=[30, 60], gamma=0.1)
    assert [s(t) for t in (0, 29, 30, 59, 60, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_unknown_kind():
    with pytest.raises(ConfigError, match="schedule.kind=exp is not allowed: .* one of constant"):
        validate_section("schedule", {"kind": "exp"})


def test_builder_converts_epochs_to_steps_and_drives_the_optimizer():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=2.0)
    sched = warmup_lr_scheduler(
        opt, total_steps=40, steps_per_epoch=10, kind="step", warmup_epochs=1, milestones_epochs=[3]
    )
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2)  # warmup over 10 steps starts at 1/10
    assert lrs[9] == pytest.approx(2.0)
    assert lrs[29] == pytest.approx(2.0) and lrs[30] == pytest.approx(0.2)  # milestone at epoch 3


def test_state_dict_is_plain_data():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_lr_scheduler(opt, total_steps=10, steps_per_epoch=5, kind="cosine")
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["lr_lambdas"][0]["kind"] == "cosine"


def test_plateau_divides_after_patience_and_stops_after_max_reductions():
    s = WarmupSchedule(kind="plateau", total_steps=100, patience=2, max_reductions=2, gamma=0.1)
    history = []
    for acc in (0.5, 0.6, 0.6, 0.59, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7):
        s.report({"val/acc1": acc})
        history.append(s(50))
    # improves, improves, flat, flat -> /10; improves, flat, flat -> /10; never a third time
    assert history == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])


def test_plateau_mode_min_and_missing_metric():
    s = WarmupSchedule(kind="plateau", total_steps=10, monitor="val/loss", mode="min", patience=1)
    s.report({"val/acc1": 0.9})  # not the monitored metric: ignored
    s.report({"val/loss": 1.0})
    s.report({"val/loss": 0.5})  # lower is better
    assert s(5) == 1.0
    s.report({"val/loss": 0.7})
    assert s(5) == pytest.approx(0.1)


def test_plateau_state_survives_a_checkpoint():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_lr_scheduler(opt, total_steps=10, steps_per_epoch=5, kind="plateau", patience=1)
    for acc in (0.5, 0.4):
        sched.lr_lambdas[0].report({"val/acc1": acc})
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    fresh = warmup_lr_scheduler(opt, total_steps=10, steps_per_epoch=5, kind="plateau", patience=1)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.lr_lambdas[0].reductions == 1 and fresh.lr_lambdas[0].best == 0.5


def test_a_resumed_schedule_is_re_planned_for_the_new_length():
    """Half-way through a 10-step cosine run, resumed as a 20-step run: the lr continues on the
    20-step curve at step 5 (optimizer groups and get_last_lr() agree), the step count is kept."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_lr_scheduler(opt, total_steps=10, steps_per_epoch=5)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    longer = warmup_lr_scheduler(opt, total_steps=20, steps_per_epoch=5)
    longer.load_state_dict(state)
    expected = 0.5 * (1 + math.cos(math.pi * 5 / 20))
    assert longer.last_epoch == 5
    assert opt.param_groups[0]["lr"] == pytest.approx(expected)
    assert longer.get_last_lr() == pytest.approx([expected])
    opt.step()
    longer.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 6 / 20)))
