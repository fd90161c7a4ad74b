"""optim/algorithm1.py: the box as code, equal bit for bit to the variant engine at the
paper's options, and every preset equal to the trajectories recorded before the split.
"""
import ast
import inspect
import json
import pathlib

import numpy as np
import pytest

from lars_ref.crosscheck import CASES
from lars_ref.crosscheck.reference import run_case
from lars_ref.crosscheck.storage import arrays_sha256
from lars_ref.crosscheck.vectors import trajectory_arrays
from lars_ref.optim import LARS, PAPER, PRESETS, SGD, algorithm1, variant_step

HASHES = pathlib.Path(__file__).with_name("reference_trajectory_hashes.json")
SHAPES = {"conv.w": (4, 3, 3, 3), "conv.b": (4,), "bn.beta": (4,), "fc.w": (10, 4)}


def tensors_and_grads(dtype, steps=5):
    """Random tensors, a zero-initialised bias and shift (||w|| = 0), a zero gradient."""
    rng = np.random.default_rng(11)
    w = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    w["conv.b"][:] = 0
    w["bn.beta"][:] = 0
    grads = []
    for t in range(steps):
        g = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
        if t == 2:
            g["fc.w"][:] = 0                                   # ||g|| = 0 with ||w|| > 0
        grads.append(g)
    return w, grads


def run(step, dtype, beta):
    """Five steps of ``step(w, g, v, gamma_t) -> (w, v, lam)`` per tensor; all bytes."""
    w, grads = tensors_and_grads(dtype)
    v = {k: np.zeros_like(x) for k, x in w.items()}
    history = []
    for t, g in enumerate(grads):
        gamma_t = [0.5, 1.0, 2.0, 1.5, 0.25][t]
        for k in w:
            w[k], v[k], lam = step(w[k], g[k], v[k], gamma_t, beta)
            history.append((w[k].tobytes(), v[k].tobytes(), np.asarray(lam).tobytes()))
    return history


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [5e-4, 0.0])
@pytest.mark.parametrize("rule", ["paper", "ratio_one"])
def test_engine_at_paper_options_equals_algorithm1_bit_for_bit(dtype, beta, rule):
    options = PAPER.replace(zero_norm_rule=rule)

    def box(w, g, v, gamma_t, beta):
        return algorithm1.lars_step(w, g, v, gamma_t=gamma_t, m=0.9, beta=beta, eta=0.01,
                                    authors_guard=(rule == "ratio_one"))

    def engine(w, g, v, gamma_t, beta):
        return variant_step(w, g, v, lr=gamma_t, momentum=0.9, weight_decay=beta, eta=0.01,
                            options=options)
    ours, theirs = run(box, dtype, beta), run(engine, dtype, beta)
    assert len(ours) == 20 and ours == theirs


def test_zero_norm_tensors_are_frozen_by_the_box_and_moved_by_the_authors_guard():
    w, g, v = np.zeros(3), np.ones(3), np.zeros(3)
    kwargs = dict(gamma_t=0.5, m=0.9, beta=0.0, eta=0.01)
    w_box, _, lam_box = algorithm1.lars_step(w, g, v, **kwargs)
    w_nvcaffe, _, lam_nvcaffe = algorithm1.lars_step(w, g, v, authors_guard=True, **kwargs)
    assert float(lam_box) == 0.0 and np.all(w_box == 0.0)
    assert float(lam_nvcaffe) == 1.0 and np.all(w_nvcaffe == -0.5)


def test_eta_none_is_momentum_sgd():
    """lam = 1: v = m v + gamma (g + beta w), w = w - v (Table 1's baseline), by hand."""
    w, g, v = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.array([0.1, 0.0])
    w_next, v_next, lam = algorithm1.lars_step(w, g, v, gamma_t=0.2, m=0.9, beta=0.1,
                                               eta=None)
    assert lam == 1.0
    np.testing.assert_allclose(v_next, [0.09 + 0.2 * 0.6, 0.2 * 0.05], rtol=1e-15)
    np.testing.assert_allclose(w_next, [1.0 - 0.21, -2.0 - 0.01], rtol=1e-15)


@pytest.mark.parametrize("eta", [0.01, None])
def test_default_lars_and_paper_sgd_step_with_algorithm1_bit_for_bit(eta):
    schedule = lambda t: 0.1 * (t + 1)                       # noqa: E731
    hyper = dict(momentum=0.9, weight_decay=5e-4)
    opt = LARS(schedule, eta=eta, **hyper) if eta else SGD(schedule, **hyper)
    params, grads = tensors_and_grads(np.float32)
    expected = {k: x.copy() for k, x in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for t, g in enumerate(grads):
        opt.step(params, g)
        for k in expected:
            expected[k], v[k], _ = algorithm1.lars_step(expected[k], g[k], v[k],
                                                        gamma_t=schedule(t), m=0.9,
                                                        beta=5e-4, eta=eta)
    assert all(params[k].tobytes() == expected[k].tobytes() for k in params)
    assert all(opt.state["v"][k].tobytes() == v[k].tobytes() for k in params)


def test_only_the_papers_options_and_the_authors_guard_bypass_the_engine():
    assert LARS(0.1).follows_algorithm1
    assert LARS(0.1, zero_norm_rule="ratio_one").follows_algorithm1
    assert not LARS(0.1, eps=1e-8).follows_algorithm1


def test_algorithm1_fits_on_one_screen():
    """At most about 40 lines of code, docstrings and comments left out."""
    tree = ast.parse(inspect.getsource(algorithm1))
    docstrings = {node.body[0].lineno for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and node.lineno in docstrings:
            skipped |= set(range(node.lineno, node.end_lineno + 1))
    lines = inspect.getsource(algorithm1).splitlines()
    code = [line for i, line in enumerate(lines, 1)
            if i not in skipped and line.strip() and not line.strip().startswith("#")]
    assert len(code) <= 40, len(code)
    body = inspect.getsource(algorithm1.lars_step)
    assert body.index("# [L4]") < body.index("# [L5]") < body.index("# [L6]")


def test_every_preset_matches_its_recorded_reference_trajectories():
    recorded = json.loads(HASHES.read_text())["sha256_arrays"]
    checked = 0
    for preset in PRESETS:
        for case in CASES:
            key = f"{preset}/{case.name}"
            if key not in recorded:                  # a preset added after the recording
                continue
            arrays = trajectory_arrays(case, run_case(case, preset=preset))
            assert arrays_sha256(arrays) == recorded[key], key
            checked += 1
    assert checked == len(recorded) == 72
