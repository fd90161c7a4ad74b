"""max/avg/global pooling: finite differences, loop oracles, ties, dtype, errors."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import (
    ShapeError,
    avg_pool2d_backward,
    avg_pool2d_forward,
    avg_pool2d_forward_naive,
    global_avg_pool_backward,
    global_avg_pool_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_forward_naive,
)
from lars_ref.gradcheck import numerical_gradient, relative_error

# (N, C, H, W), size, stride
POOL_CASES = {
    "2x2_stride2": ((2, 3, 4, 6), 2, 2),
    "3x3_stride2_overlapping_odd": ((2, 2, 7, 5), 3, 2),
    "3x3_stride1": ((3, 2, 5, 5), 3, 1),
    "1x1": ((2, 2, 3, 3), 1, 1),
}
POOL_OPS = {
    "max": (max_pool2d_forward, max_pool2d_backward, max_pool2d_forward_naive),
    "avg": (avg_pool2d_forward, avg_pool2d_backward, avg_pool2d_forward_naive),
}


def distinct_values(rng, shape, gap=0.1):
    """Values `gap` apart in random order: no max-pool ties, even after a step h."""
    values = gap * rng.permutation(int(np.prod(shape))).astype(np.float64)
    return values.reshape(shape) - values.mean()


def check_gradient(forward, backward, x, dout):
    _, cache = forward(x)
    dx = backward(dout, cache)
    numerical = numerical_gradient(lambda x: forward(x)[0], x, dout)
    assert relative_error(dx, numerical) < 1e-6
    np.testing.assert_allclose(dx, numerical, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", POOL_OPS.keys())
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pool_gradients_match_finite_differences(kind, case, rng):
    x_shape, size, stride = case
    forward, backward, _ = POOL_OPS[kind]
    x = distinct_values(rng, x_shape)
    out, _ = forward(x, size, stride)
    check_gradient(
        lambda x: forward(x, size, stride), backward, x, rng.standard_normal(out.shape)
    )


@pytest.mark.parametrize("kind", POOL_OPS.keys())
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pool_matches_naive_loops(kind, case, rng):
    x_shape, size, stride = case
    forward, _, naive = POOL_OPS[kind]
    x = rng.standard_normal(x_shape)
    np.testing.assert_allclose(
        forward(x, size, stride)[0], naive(x, size, stride), rtol=1e-14, atol=1e-15
    )


def test_max_pool_ties_go_to_the_first_maximum():
    x = np.array([[[[1.0, 5.0, 5.0],
                    [5.0, 2.0, 0.0],
                    [0.0, 5.0, 5.0]]]])
    out, cache = max_pool2d_forward(x, 2, 1)
    np.testing.assert_array_equal(out, [[[[5.0, 5.0], [5.0, 5.0]]]])
    dx = max_pool2d_backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]), cache)
    # Windows in row-major order; each sends its gradient to its first 5.
    expected = np.array([[[[0.0, 11.0, 0.0],
                           [100.0, 0.0, 0.0],
                           [0.0, 1000.0, 0.0]]]])
    np.testing.assert_array_equal(dx, expected)


def test_global_avg_pool_closed_form_and_gradient(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out, cache = global_avg_pool_forward(x)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)), rtol=1e-15)
    check_gradient(
        global_avg_pool_forward,
        global_avg_pool_backward,
        x,
        rng.standard_normal(out.shape),
    )


@pytest.mark.parametrize("kind", POOL_OPS.keys())
def test_pool_preserves_float32_and_input(kind, xp, rng):
    forward, backward, _ = POOL_OPS[kind]
    host = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    x = to_device(host, xp)
    out, cache = forward(x, 3, 2)
    assert out.dtype == xp.float32
    assert backward(xp.ones_like(out), cache).dtype == xp.float32
    out_global, cache_global = global_avg_pool_forward(x)
    assert out_global.dtype == xp.float32
    assert global_avg_pool_backward(out_global, cache_global).dtype == xp.float32
    out[...] = 0  # the output must not alias the input
    np.testing.assert_array_equal(to_numpy(x), host)


@pytest.mark.parametrize("kind", POOL_OPS.keys())
@pytest.mark.parametrize(
    "x_shape, size, stride, error, message",
    [
        (
            (2, 5, 5),
            2,
            1,
            ShapeError,
            "pool2d: x must be \\(N, C, H, W\\), got shape \\(2, 5, 5\\)",
        ),
        (
            (1, 1, 6, 6),
            3,
            2,
            ShapeError,
            "\\(6 \\+ 2\\*0 - 3\\) / 2 leaves the last 1 input",
        ),
        (
            (1, 1, 2, 2),
            3,
            1,
            ShapeError,
            "window 3 is larger than the padded input H = 2",
        ),
        ((1, 1, 4, 4), 2, 0, ValueError, "stride must be an integer >= 1, got 0"),
    ],
)
def test_pool_rejects_bad_input(kind, x_shape, size, stride, error, message):
    forward = POOL_OPS[kind][0]
    with pytest.raises(error, match=message):
        forward(np.zeros(x_shape), size, stride)


def test_global_avg_pool_rejects_2d_input():
    with pytest.raises(ShapeError, match="global_avg_pool: x must be \\(N, C, H, W\\)"):
        global_avg_pool_forward(np.zeros((2, 3)))


@pytest.mark.gpu
@pytest.mark.parametrize("kind", POOL_OPS.keys())
def test_pool_cupy_matches_numpy(kind, cupy_xp, rng):
    forward, backward, _ = POOL_OPS[kind]
    x = rng.standard_normal((2, 3, 7, 7))
    out, cache = forward(x, 3, 2)
    dout = rng.standard_normal(out.shape)
    out_gpu, cache_gpu = forward(to_device(x, cupy_xp), 3, 2)
    np.testing.assert_allclose(to_numpy(out_gpu), out, rtol=1e-14)
    dx_gpu = backward(to_device(dout, cupy_xp), cache_gpu)
    np.testing.assert_allclose(to_numpy(dx_gpu), backward(dout, cache), rtol=1e-14)
