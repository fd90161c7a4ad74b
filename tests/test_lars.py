"""lars_step and the LARS optimizer against Algorithm 1 worked out by hand (float64).

Expected values are computed here with plain Python / NumPy arithmetic from the
formulas of docs/algorithm1.md, never by calling the code under test.
"""
import math

import numpy as np
import pytest

from lars_ref.backend import gpu_available, resolve_backend
from lars_ref.optim import LARS, PAPER, LarsOptions, variant_step
from lars_ref.optim.schedules import WarmupPolySchedule


def norm(values):
    return math.sqrt(sum(x * x for x in values))


def test_lars_step_one_step_closed_form():
    w, g = [3.0, -4.0, 1.0, 2.0], [0.5, 0.25, -1.0, 0.0]
    gamma, m, beta, eta = 0.7, 0.9, 0.01, 0.002
    v = [0.1, -0.2, 0.0, 0.3]
    lam = eta * norm(w) / (norm(g) + beta * norm(w))                       # L4
    v_next = [m * vi + gamma * lam * (gi + beta * wi) for vi, gi, wi in zip(v, g, w)]   # L5
    w_next = [wi - vi for wi, vi in zip(w, v_next)]                        # L6
    shape = (2, 2)
    out_w, out_v, out_lam = variant_step(np.reshape(w, shape), np.reshape(g, shape),
                                      np.reshape(v, shape), lr=gamma, momentum=m,
                                      weight_decay=beta, eta=eta)
    assert abs(float(out_lam) - lam) <= 1e-12 * lam
    np.testing.assert_allclose(out_v.ravel(), v_next, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out_w.ravel(), w_next, rtol=1e-12, atol=1e-15)


def test_lars_optimizer_hand_unrolled_three_steps_with_changing_gamma():
    gammas = [0.1, 0.3, 0.2]                                   # gamma_t changes every step
    m, beta, eta = 0.9, 5e-3, 0.01
    w = {"a": np.array([[1.0, -2.0], [0.5, 3.0]]), "b": np.array([0.2, -0.1, 0.4])}
    g_of = lambda t, x: (t + 1.0) * np.sin(3.0 * x + t)      # noqa: E731  a w-dependent gradient
    expected = {k: x.copy() for k, x in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, gamma in enumerate(gammas):
        for k in expected:
            x, g = expected[k], g_of(t, expected[k])
            w_norm, g_norm = np.sqrt(np.sum(x * x)), np.sqrt(np.sum(g * g))
            lam = eta * w_norm / (g_norm + beta * w_norm)     # L4
            v[k] = m * v[k] + gamma * lam * (g + beta * x)     # L5
            expected[k] = x - v[k]                              # L6
    opt = LARS(lambda t: gammas[t], momentum=m, weight_decay=beta, eta=eta)
    params = {k: x.copy() for k, x in w.items()}
    for t in range(3):
        opt.step(params, {k: g_of(t, x) for k, x in params.items()})
    for k in w:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt.state["v"][k], v[k], rtol=1e-12, atol=1e-15)
    assert opt.t == 3


def test_v3_as_printed_has_no_eta_and_uses_gamma_t_plus_one():
    gammas = [0.5, 0.25, 0.125]
    w, g = np.array([1.0, 2.0, 2.0]), np.array([0.0, 0.3, -0.4])
    beta, eta = 0.1, 0.001
    lam = 3.0 / (0.5 + beta * 3.0)                             # v3 L4: no eta
    expected = w - gammas[1] * lam * (g + beta * w)            # v3 L5: gamma_{t+1} at t = 0
    opt = LARS(lambda t: gammas[t], momentum=0.9, weight_decay=beta, eta=eta,
               eta_in_local_lr=False, gamma_index="t+1")
    params = {"w": w.copy()}
    opt.step(params, {"w": g})
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)


def test_lars_step_needs_lr_next_for_gamma_t_plus_one():
    w = np.ones(3)
    with pytest.raises(ValueError, match="lr_next"):
        variant_step(w, w, w * 0, lr=0.1, momentum=0.9, weight_decay=0.0, eta=0.1,
                  options=LarsOptions(gamma_index="t+1"))


def test_lars_step_does_not_mutate_inputs_and_keeps_float32():
    rng = np.random.default_rng(0)
    w, g, v = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3))
    copies = [a.copy() for a in (w, g, v)]
    w_next, v_next, lam = variant_step(w, g, v, lr=0.1, momentum=0.9, weight_decay=1e-4, eta=0.01)
    for original, copy in zip((w, g, v), copies):
        np.testing.assert_array_equal(original, copy)
    assert w_next.dtype == v_next.dtype == np.float32
    assert np.asarray(lam).dtype == np.float32


def test_zero_initialised_bias_is_frozen_by_the_literal_paper_rule():
    params = {"b": np.zeros(4)}
    opt = LARS(0.5, momentum=0.9, weight_decay=5e-4, eta=0.001)
    for _ in range(3):
        opt.step(params, {"b": np.ones(4)})
    np.testing.assert_array_equal(params["b"], np.zeros(4))       # ||w|| = 0 -> lam = 0 forever
    assert float(opt.last_stats["b"]["local_lr"]) == 0.0


def test_lr_outside_equals_inside_for_constant_gamma_and_differs_otherwise():
    rng = np.random.default_rng(1)
    w0 = {"w": rng.normal(size=(4, 3))}
    grads = [{"w": rng.normal(size=(4, 3))} for _ in range(4)]

    def run(lr, **options):
        params = {k: x.copy() for k, x in w0.items()}
        opt = LARS(lr, momentum=0.9, weight_decay=1e-3, eta=0.01, **options)
        for grad in grads:
            opt.step(params, grad)
        return params["w"]
    np.testing.assert_allclose(run(0.3, global_lr_in_buffer=False), run(0.3), rtol=1e-12)
    changing = lambda t: 0.1 * (t + 1)                            # noqa: E731
    assert not np.allclose(run(changing, global_lr_in_buffer=False), run(changing), rtol=1e-6)
    # MXNet's momentum correction m * gamma_t / gamma_{t-1} turns "inside" into "outside"
    np.testing.assert_allclose(run(changing, momentum_correction=True),
                               run(changing, global_lr_in_buffer=False), rtol=1e-12)


def test_lars_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(2)
    w0 = {"c.w": rng.normal(size=(2, 3)), "c.b": rng.normal(size=3)}
    grads = [{k: rng.normal(size=x.shape) for k, x in w0.items()} for _ in range(6)]
    schedule = WarmupPolySchedule(1.0, total_steps=6, warmup_steps=2, warmup_start_lr=0.1)
    straight = {k: x.copy() for k, x in w0.items()}
    opt = LARS(schedule, eta=0.01)
    for grad in grads:
        opt.step(straight, grad)
    resumed = {k: x.copy() for k, x in w0.items()}
    first = LARS(schedule, eta=0.01)
    for grad in grads[:3]:
        first.step(resumed, grad)
    second = LARS(schedule, eta=0.01)
    second.load_state_dict(first.state_dict())
    assert second.t == 3
    for grad in grads[3:]:
        second.step(resumed, grad)
    for k in w0:
        np.testing.assert_array_equal(resumed[k], straight[k])


def test_last_stats_hold_the_contract_scalars():
    w, g = np.array([[3.0, 4.0]]), np.array([[0.0, 2.0]])
    params = {"fc.w": w.copy()}
    opt = LARS(0.5, momentum=0.0, weight_decay=0.0, eta=0.1)
    opt.step(params, {"fc.w": g})
    stats = opt.last_stats["fc.w"]
    assert set(stats) == {"w_norm", "g_norm", "local_lr", "update_norm"}
    assert float(stats["w_norm"]) == 5.0 and float(stats["g_norm"]) == 2.0
    assert math.isclose(float(stats["local_lr"]), 0.1 * 5.0 / 2.0)
    assert math.isclose(float(stats["update_norm"]), 0.5 * 0.25 * 2.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr=-1.0"), (dict(eta=0.0), "eta=0.0"),
    (dict(eta=-0.1), "eta=-0.1"), (dict(momentum=1.0), "momentum=1.0"),
    (dict(momentum=-0.1), "momentum=-0.1"), (dict(weight_decay=-1e-4), "weight_decay=-0.0001"),
])
def test_lars_rejects_bad_hyperparameters_by_name(kwargs, message):
    settings = dict(lr=0.1, momentum=0.9, weight_decay=1e-4, eta=0.001) | kwargs
    lr = settings.pop("lr")
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        LARS(lr, **settings)


def test_lars_rejects_mismatched_shapes_naming_the_tensor():
    opt = LARS(0.1)
    with pytest.raises(ValueError, match=r"conv1\.w.*\(2, 3\).*\(3, 2\)"):
        opt.step({"conv1.w": np.ones((2, 3))}, {"conv1.w": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        variant_step(np.ones(2), np.ones(3), np.zeros(2), lr=0.1, momentum=0.9,
                  weight_decay=0.0, eta=0.1)


def test_unknown_option_names_are_listed():
    with pytest.raises(ValueError, match="unknown LARS option.*eta_in_lr.*valid options"):
        LARS(0.1, eta_in_lr=False)
    with pytest.raises(ValueError, match="zero_norm_rule"):
        LarsOptions(zero_norm_rule="nope")
    assert PAPER.deviations() == {}


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a usable GPU")
def test_lars_numpy_and_cupy_agree():
    cp = resolve_backend("cupy")
    rng = np.random.default_rng(3)
    host = {"w": rng.normal(size=(8, 5)), "b": np.zeros(5)}
    grads = [{k: rng.normal(size=x.shape) for k, x in host.items()} for _ in range(3)]
    device = {k: cp.asarray(x) for k, x in host.items()}
    for params in (host, device):
        opt = LARS(0.2, eta=0.01, zero_norm_rule="ratio_one")
        xp = cp if params is device else np
        for grad in grads:
            opt.step(params, {k: xp.asarray(x) for k, x in grad.items()})
    for k in host:
        np.testing.assert_allclose(cp.asnumpy(device[k]), host[k], rtol=1e-12)
