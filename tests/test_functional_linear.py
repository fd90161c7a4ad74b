"""linear_forward / linear_backward: finite differences, closed form, dtype, errors."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import ShapeError, linear_backward, linear_forward
from lars_ref.gradcheck import assert_gradients_match, numerical_gradients


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradients_match_finite_differences(with_bias, rng):
    x, w = rng.standard_normal((3, 5)), rng.standard_normal((5, 4))
    b = rng.standard_normal(4) if with_bias else None
    out, cache = linear_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    analytic = linear_backward(dout, cache)
    numerical = numerical_gradients(
        lambda x, w, b: linear_forward(x, w, b)[0], [x, w, b], dout
    )
    assert_gradients_match(analytic, numerical, ("dx", "dw", "db"))


def test_linear_closed_form():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    out, cache = linear_forward(x, w, np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(out, [[2.0, 5.0, 3.0]])
    dx, dw, db = linear_backward(np.array([[1.0, -1.0, 2.0]]), cache)
    np.testing.assert_array_equal(dx, [[1.0 * 1 + 0 * -1 + -1.0 * 2, 0.5 - 2.0 + 2.0]])
    np.testing.assert_array_equal(dw, [[1.0, -1.0, 2.0], [2.0, -2.0, 4.0]])
    np.testing.assert_array_equal(db, [1.0, -1.0, 2.0])


def test_linear_preserves_float32_and_inputs(xp, rng):
    host = [rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (5, 2), (2,))]
    x, w, b = (to_device(a, xp) for a in host)
    out, cache = linear_forward(x, w, b)
    grads = linear_backward(xp.ones_like(out), cache)
    assert out.dtype == xp.float32 and all(g.dtype == xp.float32 for g in grads)
    for original, a in zip(host, (x, w, b)):
        np.testing.assert_array_equal(original, to_numpy(a))


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, message",
    [
        (
            (2, 3, 4),
            (12, 2),
            None,
            "linear: x must be \\(N, D\\), got shape \\(2, 3, 4\\)",
        ),
        ((2, 3), (4, 2), None, "x has D=3 features but w expects w.shape\\[0\\]=4"),
        ((2, 3), (3,), None, "linear: w must be \\(D, M\\)"),
        ((2, 3), (3, 2), (3,), "linear: b must have shape \\(2,\\), got \\(3,\\)"),
    ],
)
def test_linear_rejects_bad_shapes(x_shape, w_shape, b_shape, message):
    b = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ShapeError, match=message):
        linear_forward(np.zeros(x_shape), np.zeros(w_shape), b)


@pytest.mark.gpu
def test_linear_cupy_matches_numpy(cupy_xp, rng):
    host = [rng.standard_normal(s) for s in ((4, 6), (6, 3), (3,))]
    out, cache = linear_forward(*host)
    dout = rng.standard_normal(out.shape)
    out_gpu, cache_gpu = linear_forward(*(to_device(a, cupy_xp) for a in host))
    np.testing.assert_allclose(to_numpy(out_gpu), out, rtol=1e-12)
    for g_gpu, g in zip(
        linear_backward(to_device(dout, cupy_xp), cache_gpu),
        linear_backward(dout, cache),
    ):
        np.testing.assert_allclose(to_numpy(g_gpu), g, rtol=1e-12)
