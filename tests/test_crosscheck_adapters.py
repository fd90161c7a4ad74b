"""Broken adapters get a one-line message naming the case, step and tensor, never a traceback."""
import numpy as np
import pytest

from lars_ref.crosscheck import AdapterError, CASES, check, format_report, replay
from lars_ref.crosscheck.cli import crosscheck_main

FIRST_CASE = CASES[0].name


def sgd_factory(corrupt=None):
    """Plain SGD (a valid adapter); ``corrupt(weights, t)`` may break what step returns."""
    def make(case, init_params):
        w = {k: a.copy() for k, a in init_params.items()}

        def step(grads, t, gamma_t):
            for k in w:
                w[k] = w[k] - gamma_t * grads[k]
            return w if corrupt is None else corrupt(dict(w), t)
        return step
    return make


def error_of(make):
    report = check(make)
    assert report.error is not None and report.ranking == []
    text = format_report(report)
    assert "ADAPTER ERROR" in text and "Traceback" not in text
    return report.error


def test_wrong_shape_names_tensor_and_step():
    def reshape_bias(w, t):
        if t == 3:
            w["fc.b"] = w["fc.b"].reshape(5, 1)
        return w
    message = error_of(sgd_factory(reshape_bias))
    assert f"case '{FIRST_CASE}', step 3, tensor 'fc.b': returned shape (5, 1), expected (5,)" \
        in message


def test_nan_names_tensor_step_and_index():
    def poison(w, t):
        if t == 2:
            w["head.w"] = w["head.w"].copy()
            w["head.w"][1, 2] = np.nan
        return w
    message = error_of(sgd_factory(poison))
    assert "step 2, tensor 'head.w': 1 of 15 returned weights are NaN or Inf (first at index " \
           "(1, 2))" in message


def test_missing_and_extra_names_are_listed():
    def rename(w, t):
        w["fc.bias"] = w.pop("fc.b")
        return w
    message = error_of(sgd_factory(rename))
    assert "step 0: returned tensor names do not match the case: missing ['fc.b'], " \
           "unexpected ['fc.bias']" in message


def test_exception_inside_step_is_reported_with_its_step():
    def explode(w, t):
        if t == 1:
            raise ZeroDivisionError("float division by zero")
        return w
    message = error_of(sgd_factory(explode))
    assert f"case '{FIRST_CASE}', step 1: step raised ZeroDivisionError: float division by zero" \
        in message


def test_non_dict_return_and_unconvertible_values():
    message = error_of(sgd_factory(lambda w, t: list(w.values())))
    assert "step 0: step returned list, expected a dict" in message
    message = error_of(sgd_factory(lambda w, t: {**w, "conv.w": "not numbers"}))
    assert "step 0, tensor 'conv.w': cannot convert the returned str" in message


def test_reset_failure_and_non_adapter():
    class Broken:
        name = "broken"

        def reset(self, case, init_params):
            raise RuntimeError("no GPU here")

        def step(self, grads, t, gamma_t):
            return {}
    assert "reset raised RuntimeError: no GPU here" in error_of(Broken())
    with pytest.raises(AdapterError, match="is not an adapter"):
        replay(42, CASES[0])


def test_adapter_may_modify_the_grads_it_is_given():
    def make(case, init_params):
        w = {k: a.copy() for k, a in init_params.items()}

        def step(grads, t, gamma_t):
            for k in w:
                grads[k] *= gamma_t          # in place, as PyTorch optimizers do to p.grad
                w[k] = w[k] - grads[k]
            return w
        return step
    first = replay(make, CASES[0])
    second = replay(make, CASES[0])
    for a, b in zip(first, second):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_cli_crosscheck_exit_codes(capsys):
    assert crosscheck_main(["--adapter", "preset:torchlars", "--no-explain"]) == 0
    assert "MATCHES preset 'torchlars'" in capsys.readouterr().out
    assert crosscheck_main(["--adapter", "no_such_module_xyz:make"]) == 2
    assert "cannot load adapter" in capsys.readouterr().err


def test_a_broken_factory_is_called_by_its_own_name():
    def my_broken_lars(case, init_params):
        raise RuntimeError("not ready")
    report = check(my_broken_lars)
    assert report.adapter == "my_broken_lars"
    assert report.error.startswith("adapter 'my_broken_lars': ")
    assert "my_broken_lars" in format_report(report) and "'function'" not in format_report(report)
