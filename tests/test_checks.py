"""lars_ref.checks: one check per hyperparameter, one-line messages naming the setting."""
import math

import pytest

from lars_ref.checks import (HyperparameterError, check_choice, check_dampening, check_eta,
                             check_lr, check_momentum, check_weight_decay)
from lars_ref.errors import UserError


class FlagError(UserError):
    """Stands in for a caller's own error class (e.g. ConfigError)."""


@pytest.mark.parametrize("check, good, bad, message", [
    (check_lr, [0.0, 2.5], [-1.0, math.inf, math.nan], "lr must be a finite learning rate >= 0"),
    (check_momentum, [0.0, 0.9], [1.0, -0.1], "momentum m must be in [0, 1)"),
    (check_weight_decay, [0.0, 5e-4], [-1e-4, math.inf], "weight decay beta must be >= 0"),
    (check_eta, [1e-3], [0.0, -1.0, math.nan], "trust coefficient eta must be > 0"),
    (check_dampening, [0.0, 1.0], [-0.1, 1.5], "dampening must be in [0, 1]"),
])
def test_each_check_accepts_its_range_and_names_the_bad_value(check, good, bad, message):
    for value in good:
        check(value)
    for value in bad:
        with pytest.raises(HyperparameterError) as caught:
            check(value)
        assert message in str(caught.value) and f"={value}" in str(caught.value)
        assert isinstance(caught.value, (UserError, ValueError))


def test_callers_choose_the_name_the_error_class_and_a_strict_lr():
    with pytest.raises(FlagError, match=r"^--lr must be a finite learning rate > 0, got --lr=0.0$"):
        check_lr(0.0, "--lr", positive=True, error=FlagError)
    with pytest.raises(HyperparameterError, match="schedule\\(3\\)=-1.0"):
        check_lr(-1.0, "schedule(3)")
    with pytest.raises(HyperparameterError, match="form must be one of 'paper', 'pytorch', "
                                                  "got 'keras'"):
        check_choice("keras", ("paper", "pytorch"), "form")
    check_choice("paper", ("paper", "pytorch"), "form")
