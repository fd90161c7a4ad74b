"""The checker names planted bugs: each is a small NumPy LARS written here, not lars_ref's.

Every planted LARS is Algorithm 1 ([ICLR] form) or the SimCLR/optax rule with ONE
classic mistake of docs/paper_notes.md; the checker must name the
option and the Algorithm 1 line, and the first step where the bug shows, which
follows from the maths: a bug in the trust ratio or in the update direction shows
at step 0; the LR placement only once gamma has changed with a non-zero buffer
(step 1 of the warm-up case).
"""
import numpy as np

from lars_ref.crosscheck import check, format_report


def planted_lars(*, drop_weight_decay=False, lr_outside=False, decayed_denominator=False):
    """Algorithm 1 with eta in L4 and gamma_t in L5, plus the requested bug."""
    def make(case, init_params):
        w = {k: a.copy() for k, a in init_params.items()}
        v = {k: np.zeros_like(a) for k, a in init_params.items()}
        m, beta, eta = case.momentum, case.weight_decay, case.eta

        def step(grads, t, gamma_t):
            for k, g in grads.items():
                w_norm, g_norm = np.linalg.norm(w[k]), np.linalg.norm(g)
                if decayed_denominator:                     # bug: ||g + beta w||
                    denominator = np.linalg.norm(g + beta * w[k])
                else:
                    denominator = g_norm + beta * w_norm
                lam = eta * w_norm / denominator if denominator > 0 else 0.0
                u = g if drop_weight_decay else g + beta * w[k]   # bug: timm 0.5.4
                if lr_outside:                                    # bug: PyTorch SGD form
                    v[k] = m * v[k] + lam * u
                    w[k] = w[k] - gamma_t * v[k]
                else:
                    v[k] = m * v[k] + gamma_t * lam * u
                    w[k] = w[k] - v[k]
            return w
        return step
    return make


def simclr_port_with_ge_bug(case, init_params):
    """The SimCLR/TF classic rule ported with `>= 0` (Spijkervet/SimCLR #27): lam = 0 at ||w|| = 0."""
    w = {k: a.copy() for k, a in init_params.items()}
    v = {k: np.zeros_like(a) for k, a in init_params.items()}
    m, beta, eta = case.momentum, case.weight_decay, case.eta

    def step(grads, t, gamma_t):
        for k, g in grads.items():
            u = g + beta * w[k]
            w_norm, u_norm = np.linalg.norm(w[k]), np.linalg.norm(u)
            trust = eta * w_norm / u_norm if u_norm > 0 else 1.0
            lam = trust if w_norm >= 0 else 1.0          # the bug: always true
            v[k] = m * v[k] + gamma_t * lam * u
            w[k] = w[k] - v[k]
        return w
    return step


def explained_by(report):
    return {(fit.preset, fit.toggle.option, fit.toggle.value) for fit in report.explanations}


def test_planted_lars_without_bugs_matches_the_paper():
    report = check(planted_lars(), explain=False)
    assert report.matches == ["paper_iclr"]
    assert report.ranking[0].max_dev < 1e-13


def test_names_weight_decay_dropped_from_the_update():
    report = check(planted_lars(drop_weight_decay=True))
    assert report.matches == []
    assert ("paper_iclr", "add_weight_decay_to_update", False) in explained_by(report)
    case, step, tensor, _ = report.paper.first_divergence(report.tol)
    assert (case, step) == ("constant_wd", 0)
    text = format_report(report)
    assert "L5 (weight decay beta*w in the update direction)" in text


def test_names_the_frozen_zero_norm_tensor():
    report = check(simclr_port_with_ge_bug)
    assert report.matches == []
    named = explained_by(report)
    assert ("optax", "zero_norm_rule", "paper") in named
    optax_fit = next(f for f in report.ranking if f.preset == "optax")
    case, step, tensor, dev = optax_fit.first_divergence(report.tol)
    assert (step, tensor) == (0, "fc.b") and dev == 1.0    # frozen vs moving: dev exactly 1
    assert "||w|| = 0 gives lam = 0 (frozen tensor)" in format_report(report)


def test_names_the_lr_outside_the_buffer():
    report = check(planted_lars(lr_outside=True))
    assert report.matches == []
    named = explained_by(report)
    assert ("paper_iclr", "global_lr_in_buffer", False) in named
    # MXNet's momentum correction is algebraically the same rule (documented equivalence)
    assert named <= {("paper_iclr", "global_lr_in_buffer", False),
                     ("paper_iclr", "momentum_correction", True)}
    case, step, _, _ = report.paper.first_divergence(report.tol)
    assert (case, step) == ("warmup_poly_wd", 1)


def test_names_the_decayed_gradient_denominator():
    report = check(planted_lars(decayed_denominator=True))
    assert report.matches == []
    assert ("paper_iclr", "trust_denominator", "decayed_grad_norm") in explained_by(report)
    case, step, _, _ = report.paper.first_divergence(report.tol)
    assert (case, step) == ("constant_wd", 0)
    # with beta = 0 both denominators are ||g||: the no-weight-decay cases agree throughout
    paper_by_case = {c.case: c for c in report.paper.comparisons}
    assert max(paper_by_case["warmup_poly_no_wd"].devs) < 1e-13
    assert "||g + beta*w|| instead of ||g|| + beta*||w||" in format_report(report)


def dampened_lars(dampening):
    """Algorithm 1 with PyTorch's dampening: v = m v + (1 - d) gamma_t lam u (d = None: d = m)."""
    def make(case, init_params):
        w = {k: a.copy() for k, a in init_params.items()}
        v = {k: np.zeros_like(a) for k, a in init_params.items()}
        m, beta, eta = case.momentum, case.weight_decay, case.eta
        d = m if dampening is None else dampening

        def step(grads, t, gamma_t):
            for k, g in grads.items():
                w_norm, g_norm = np.linalg.norm(w[k]), np.linalg.norm(g)
                denominator = g_norm + beta * w_norm
                lam = eta * w_norm / denominator if denominator > 0 else 0.0
                v[k] = m * v[k] + (1 - d) * gamma_t * lam * (g + beta * w[k])
                w[k] = w[k] - v[k]
            return w
        return step
    return make


def test_dampening_shows_at_step_0_and_d_equal_m_is_named_as_the_1_minus_m_factor():
    """v_0 = 0, so the first step is already scaled by (1 - d); with d = m every step is
    the paper's step with lam scaled by (1 - m): NVCaffe 2018's option, named exactly."""
    report = check(dampened_lars(dampening=None))
    assert report.matches == []
    case, step, _, dev = report.paper.first_divergence(report.tol)
    assert (case, step) == ("constant_wd", 0) and dev > 0.5
    assert ("paper_iclr", "scale_by_one_minus_momentum", True) in explained_by(report)
    assert "(1 - m)" in format_report(report)
    other = check(dampened_lars(dampening=0.3), explain=False)
    assert other.matches == [] and other.paper.first_divergence(other.tol)[1] == 0
