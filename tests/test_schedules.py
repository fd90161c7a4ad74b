"""Schedules: the paper's numbers, the warm-up/decay composition, and input checks."""
import dataclasses
import doctest

import pytest

from lars_ref.optim import schedules
from lars_ref.optim.schedules import (ConstantSchedule, WarmupPolySchedule, as_schedule,
                                      epochs_to_steps, linear_scaling, linear_warmup, poly_decay,
                                      steps_per_epoch)


def test_docstring_examples_hold():
    result = doctest.testmod(schedules)
    assert result.attempted >= 8 and result.failed == 0


def test_poly_decay_is_algorithm1_line3():
    gamma_0, T = 2.0, 8
    for t in range(T + 1):
        assert poly_decay(t, gamma_0, T) == pytest.approx(gamma_0 * (1 - t / T) ** 2, rel=1e-15)
    assert poly_decay(T + 5, gamma_0, T) == 0.0                # after the run: 0
    assert poly_decay(2, 1.0, 4, power=1) == 0.5


def test_linear_warmup_ramps_from_start_to_target():
    assert linear_warmup(0, 0.001, 0.05, 10) == 0.001         # footnote 2: starts at 0.001
    assert linear_warmup(5, 0.001, 0.05, 10) == pytest.approx(0.0255)
    assert linear_warmup(10, 0.001, 0.05, 10) == 0.05
    assert linear_warmup(3, 0.001, 0.05, 0) == 0.05            # no warm-up


def test_linear_scaling_and_epoch_helpers():
    assert linear_scaling(0.1, 1024, 256) == pytest.approx(0.4)
    assert steps_per_epoch(1000, 128) == 8 and steps_per_epoch(1000, 128, drop_last=True) == 7
    assert epochs_to_steps(2.5, 1000, 100) == 25


def test_warmup_poly_decay_clocks():
    absolute = WarmupPolySchedule(1.0, total_steps=10, warmup_steps=4, warmup_start_lr=0.2)
    after = dataclasses.replace(absolute, decay_clock="after_warmup")
    for s in (absolute, after):
        assert [s(t) for t in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
        assert s(10) == 0.0
    assert absolute(4) == pytest.approx((1 - 4 / 10) ** 2)     # NVCaffe: absolute iteration
    assert after(4) == 1.0                                     # continuous at the end of warm-up
    assert after(7) == pytest.approx((1 - 3 / 6) ** 2)
    no_warmup = WarmupPolySchedule(3.0, total_steps=5)
    assert [no_warmup(t) for t in range(6)] == [poly_decay(t, 3.0, 5) for t in range(6)]
    full = WarmupPolySchedule(1.0, total_steps=4, warmup_steps=4, decay_clock="after_warmup")
    assert full(3) == 0.75 and full(4) == 0.0


def test_as_schedule_wraps_floats():
    assert as_schedule(0.3)(7) == 0.3 and isinstance(as_schedule(0.3), ConstantSchedule)
    fn = lambda t: 1.0 / (t + 1)                                # noqa: E731
    assert as_schedule(fn) is fn


@pytest.mark.parametrize("call, message", [
    (lambda: poly_decay(1, 0.1, 0), "T=0"),
    (lambda: poly_decay(1, 0.1, -5), "T=-5"),
    (lambda: poly_decay(-1, 0.1, 10), "t=-1"),
    (lambda: poly_decay(1, -0.1, 10), "gamma_0=-0.1"),
    (lambda: poly_decay(1, 0.1, 10, power=0), "power=0"),
    (lambda: linear_warmup(0, -1.0, 0.1, 5), "start_lr=-1.0"),
    (lambda: linear_warmup(0, 0.0, 0.1, -5), "warmup_steps=-5"),
    (lambda: linear_scaling(0.1, 0, 256), "batch_size=0"),
    (lambda: WarmupPolySchedule(1.0, total_steps=10, warmup_steps=11), "warmup_steps=11 > T=10"),
    (lambda: WarmupPolySchedule(1.0, total_steps=0), "T=0"),
    (lambda: WarmupPolySchedule(-2.0, total_steps=10), "gamma_0=-2.0"),
    (lambda: WarmupPolySchedule(1.0, total_steps=10, decay_clock="relative"), "relative"),
    (lambda: ConstantSchedule(float("nan")), "lr=nan"),
    (lambda: epochs_to_steps(-1, 100, 10), "epochs=-1"),
])
def test_bad_schedule_settings_raise_value_error_naming_the_value(call, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        call()
