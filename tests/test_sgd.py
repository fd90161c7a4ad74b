"""SGD in the paper form (LR inside the buffer) and the PyTorch form (LR outside)."""
import doctest

import numpy as np
import pytest

from lars_ref.optim import SGD, sgd_step
from lars_ref.optim import sgd as sgd_module


def test_docstring_examples_hold():
    result = doctest.testmod(sgd_module)
    assert result.attempted >= 5 and result.failed == 0


def test_paper_form_two_steps_by_hand():
    w, m, beta = np.array([1.0, -2.0]), 0.9, 0.1
    g0, g1, gammas = np.array([0.5, 0.5]), np.array([-1.0, 2.0]), (0.2, 0.05)
    v1 = gammas[0] * (g0 + beta * w)
    w1 = w - v1
    v2 = m * v1 + gammas[1] * (g1 + beta * w1)
    w2 = w1 - v2
    opt = SGD(lambda t: gammas[t], momentum=m, weight_decay=beta)
    params = {"w": w.copy()}
    opt.step(params, {"w": g0})
    opt.step(params, {"w": g1})
    np.testing.assert_allclose(params["w"], w2, rtol=1e-15)
    np.testing.assert_allclose(opt.state["v"]["w"], v2, rtol=1e-15)


def test_pytorch_form_two_steps_by_hand():
    w, m, beta = np.array([1.0, -2.0]), 0.9, 0.1
    g0, g1, gammas = np.array([0.5, 0.5]), np.array([-1.0, 2.0]), (0.2, 0.05)
    b1 = g0 + beta * w
    w1 = w - gammas[0] * b1
    b2 = m * b1 + (g1 + beta * w1)
    w2 = w1 - gammas[1] * b2
    opt = SGD(lambda t: gammas[t], momentum=m, weight_decay=beta, form="pytorch")
    params = {"w": w.copy()}
    opt.step(params, {"w": g0})
    opt.step(params, {"w": g1})
    np.testing.assert_allclose(params["w"], w2, rtol=1e-15)


def test_forms_agree_for_constant_gamma():
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=(3, 4)), [rng.normal(size=(3, 4)) for _ in range(5)]
    results = []
    for form in ("paper", "pytorch"):
        params = {"w": w0.copy()}
        opt = SGD(0.3, momentum=0.8, weight_decay=1e-2, form=form, nesterov=True)
        for g in grads:
            opt.step(params, {"w": g})
        results.append(params["w"])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_sgd_keeps_dtype_and_reports_local_lr_one():
    w = np.ones((2, 2), np.float32)
    w_next, v_next, lam = sgd_step(w, w, np.zeros_like(w), lr=0.1, momentum=0.9, weight_decay=0.0)
    assert w_next.dtype == v_next.dtype == np.float32 and float(lam) == 1.0
    opt = SGD(0.1)
    params = {"w": w.copy()}
    opt.step(params, {"w": w})
    assert float(opt.last_stats["w"]["local_lr"]) == 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=0.0), "lr"), (dict(lr=-0.5), "lr=-0.5"), (dict(momentum=1.0), "momentum=1.0"),
    (dict(momentum=-0.5), "momentum=-0.5"), (dict(weight_decay=-1.0), "weight_decay=-1.0"),
    (dict(form="keras"), "keras"),
])
def test_sgd_rejects_bad_hyperparameters_by_name(kwargs, message):
    settings = dict(lr=0.1, momentum=0.9, weight_decay=1e-4) | kwargs
    lr = settings.pop("lr")
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        SGD(lr, **settings)


def test_sgd_rejects_mismatched_shapes_and_bad_schedules():
    with pytest.raises(ValueError, match=r"fc\.w.*\(2,\).*\(3,\)"):
        SGD(0.1).step({"fc.w": np.ones(2)}, {"fc.w": np.ones(3)})
    with pytest.raises(ValueError, match=r"schedule\(0\)"):
        SGD(lambda t: -1.0).step({"w": np.ones(2)}, {"w": np.ones(2)})
    with pytest.raises(ValueError, match="nesterov"):
        sgd_step(np.ones(2), np.ones(2), np.zeros(2), lr=0.1, momentum=0.0, weight_decay=0.0,
                 nesterov=True)
