"""Properties of lars_step over many random cases (hypothesis), float64."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lars_ref.optim import PAPER, PRESETS, LarsOptions, variant_step

# Entries in [-100, 100], with exact zeros but no values so tiny that squaring underflows.
ENTRY = st.floats(-100.0, 100.0).map(lambda x: 0.0 if abs(x) < 1e-6 else x)
SHAPE = st.sampled_from([(1,), (5,), (2, 3), (3, 1, 2)])
SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def tensors(draw, zero_w=st.booleans(), zero_g=st.booleans()):
    """(w, g, v) of one random shape; w or g may be forced to exact zeros."""
    shape = draw(SHAPE)
    w, g, v = (draw(arrays(np.float64, shape, elements=ENTRY)) for _ in range(3))
    if draw(zero_w):
        w = np.zeros(shape)
    if draw(zero_g):
        g = np.zeros(shape)
    return w, g, v


# beta is 0 or >= 1e-6: with a subnormal beta and g = 0, lam = eta/beta overflows (as it
# would in every implementation); docs/algorithm1.md notes it.
HYPER = dict(lr=st.floats(1e-3, 10.0), beta=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)),
             eta=st.floats(1e-4, 1.0),
             m=st.floats(0.0, 0.99))


@SETTINGS
@given(tensors(), HYPER["lr"], HYPER["beta"], HYPER["eta"])
def test_step_without_momentum_is_at_most_gamma_eta_norm_w(wgv, gamma, beta, eta):
    """m = 0: ||gamma lam (g + beta w)|| <= gamma eta ||w|| (triangle inequality, [ICLR] Eq. 4)."""
    w, g, v = wgv
    w_next, _, _ = variant_step(w, g, v, lr=gamma, momentum=0.0, weight_decay=beta, eta=eta)
    bound = gamma * eta * np.linalg.norm(w)
    # Rounding of L6 (w - v): |fl(w - v) - (w - v)| <= eps/2 |w| per entry, so the measured
    # step may exceed the exact one by up to eps * ||w|| (e.g. w = 1, step 3e-5).
    rounding = np.finfo(np.float64).eps * np.linalg.norm(w)
    assert np.linalg.norm(w_next - w) <= bound * (1 + 1e-12) + rounding + 1e-300


@SETTINGS
@given(tensors(zero_w=st.just(False), zero_g=st.just(False)), st.floats(1e-3, 1e3),
       HYPER["lr"], HYPER["eta"], HYPER["m"])
def test_step_is_invariant_to_gradient_scale_without_weight_decay(wgv, c, gamma, eta, m):
    """beta = 0 and eps = 0: lam g = eta ||w|| g/||g|| does not change when g -> c g."""
    w, g, v = wgv
    kwargs = dict(lr=gamma, momentum=m, weight_decay=0.0, eta=eta)
    w1, v1, _ = variant_step(w, g, v, **kwargs)
    w2, v2, _ = variant_step(w, c * g, v, **kwargs)
    np.testing.assert_allclose(v2, v1, rtol=1e-12, atol=1e-12 * (np.abs(v).max() + 1e-300))
    np.testing.assert_allclose(w2, w1, rtol=1e-12, atol=1e-12 * (np.abs(w).max() + 1e-300))


def expected_lam_on_zero_norm(rule, w_norm, g_norm, beta, eta):
    """The documented lam of each zero-norm rule (docs/algorithm1.md), or None if no zero."""
    if w_norm > 0 and g_norm > 0:
        return None
    if rule in ("ratio_one", "skip"):
        return 1.0
    if rule == "paper":
        return 0.0 if (w_norm == 0 or beta == 0) else eta / beta
    # "ratio_one_on_zero_denominator" (pytorch-optimizer)
    return 1.0 if (w_norm == 0 or beta == 0) else eta / beta


@SETTINGS
@given(tensors(), st.sampled_from(["paper", "ratio_one", "skip", "ratio_one_on_zero_denominator"]),
       HYPER["lr"], st.sampled_from([0.0, 1e-3, 0.5]), HYPER["eta"], HYPER["m"])
def test_zero_norm_rules_do_what_their_docs_say(wgv, rule, gamma, beta, eta, m):
    w, g, v = wgv
    options = LarsOptions(zero_norm_rule=rule)
    w_next, v_next, lam = variant_step(w, g, v, lr=gamma, momentum=m, weight_decay=beta, eta=eta,
                                    options=options)
    assert np.all(np.isfinite(w_next)) and np.all(np.isfinite(v_next)) and np.isfinite(lam)
    expected = expected_lam_on_zero_norm(rule, np.linalg.norm(w), np.linalg.norm(g), beta, eta)
    if expected is None:
        return
    assert float(lam) == pytest.approx(expected, rel=1e-12)
    decayed = g if rule == "skip" else g + beta * w           # "skip" also loses weight decay
    np.testing.assert_allclose(v_next, m * v + gamma * expected * decayed, rtol=1e-12, atol=1e-12)
    if rule == "paper" and not w.any() and not v.any():
        np.testing.assert_array_equal(w_next, w)               # a zero tensor stays frozen


@SETTINGS
@given(tensors(), st.sampled_from(sorted(PRESETS)), HYPER["lr"], HYPER["beta"], HYPER["eta"],
       HYPER["m"])
def test_every_preset_stays_finite_on_zero_norms(wgv, name, gamma, beta, eta, m):
    w, g, v = wgv
    w_next, v_next, lam = variant_step(w, g, v, lr=gamma, momentum=m, weight_decay=beta, eta=eta,
                                    options=PRESETS[name].options, lr_next=gamma / 2,
                                    lr_prev=gamma * 2)
    assert np.all(np.isfinite(w_next)) and np.all(np.isfinite(v_next)) and np.isfinite(lam)


@SETTINGS
@given(tensors(), HYPER["lr"], HYPER["beta"], HYPER["eta"])
def test_trust_ratio_clip_caps_the_effective_rate_at_gamma(wgv, gamma, beta, eta):
    """apex LARC clip: effective per-tensor rate gamma * min(lam/gamma, 1) = min(lam, gamma)."""
    w, g, v = wgv
    _, _, lam = variant_step(w, g, v, lr=gamma, momentum=0.0, weight_decay=beta, eta=eta)
    _, _, clipped = variant_step(w, g, v, lr=gamma, momentum=0.0, weight_decay=beta, eta=eta,
                              options=PAPER.replace(trust_ratio_clip=True))
    assert gamma * float(clipped) == pytest.approx(min(float(lam), gamma), rel=1e-12, abs=1e-300)
