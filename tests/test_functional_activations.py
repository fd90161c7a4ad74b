"""relu and dropout: finite differences, closed forms, statistics, dtype, GPU."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import (
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
)
from lars_ref.gradcheck import numerical_gradient, relative_error


def away_from_zero(rng, shape, margin=0.1):
    """Random values with |x| >= margin, so a finite step never crosses ReLU's kink."""
    return rng.choice([-1.0, 1.0], size=shape) * (margin + rng.random(shape))


def test_relu_gradient_matches_finite_differences(rng):
    x = away_from_zero(rng, (2, 3, 4, 5))
    out, cache = relu_forward(x)
    dout = rng.standard_normal(out.shape)
    numerical = numerical_gradient(lambda x: relu_forward(x)[0], x, dout)
    dx = relu_backward(dout, cache)
    assert relative_error(dx, numerical) < 1e-6
    np.testing.assert_allclose(dx, numerical, rtol=1e-6, atol=1e-8)


def test_relu_closed_form():
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0])
    out, cache = relu_forward(x)
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(
        relu_backward(np.full(5, 7.0), cache), [0, 0, 0, 7.0, 7.0]
    )


def test_relu_preserves_float32_and_input(xp, rng):
    host = rng.standard_normal((3, 4)).astype(np.float32)
    x = to_device(host, xp)
    out, cache = relu_forward(x)
    dx = relu_backward(xp.ones_like(out), cache)
    assert out.dtype == xp.float32 and dx.dtype == xp.float32
    np.testing.assert_array_equal(to_numpy(x), host)


def test_dropout_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((4, 6))
    dout = rng.standard_normal(x.shape)

    def forward(x):  # the same mask on every call: reseed the generator
        return dropout_forward(x, 0.3, np.random.default_rng(5))[0]

    _, cache = dropout_forward(x, 0.3, np.random.default_rng(5))
    dx = dropout_backward(dout, cache)
    numerical = numerical_gradient(forward, x, dout)
    assert relative_error(dx, numerical) < 1e-6
    np.testing.assert_allclose(dx, numerical, rtol=1e-6, atol=1e-8)


def test_dropout_keeps_expectation_and_scales_kept_units(rng):
    p = 0.25
    x = rng.uniform(1.0, 2.0, size=(200, 500))
    out, cache = dropout_forward(x, p, rng)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-15)
    # Fraction dropped: binomial with n = 1e5, std = sqrt(p(1-p)/n) ~ 0.0014.
    assert abs((~kept).mean() - p) < 0.01
    # E[out] = x: relative deviation of the mean ~ 1e-3 for n = 1e5 samples.
    assert abs(out.mean() / x.mean() - 1) < 0.01
    np.testing.assert_array_equal(dropout_backward(np.ones_like(x), cache) != 0, kept)


def test_dropout_same_seed_same_mask_and_p_zero_is_identity(rng):
    x = rng.standard_normal((3, 8))
    out_a, _ = dropout_forward(x, 0.5, np.random.default_rng(1))
    out_b, _ = dropout_forward(x, 0.5, np.random.default_rng(1))
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(dropout_forward(x, 0.0, rng)[0], x)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_rejects_bad_probability(p, rng):
    with pytest.raises(
        ValueError, match="dropout: drop probability p must be in \\[0, 1\\)"
    ):
        dropout_forward(np.zeros(3), p, rng)


def test_dropout_preserves_float32_and_input(xp, rng):
    host = rng.standard_normal((3, 4)).astype(np.float32)
    x = to_device(host, xp)
    out, cache = dropout_forward(x, 0.5, rng)
    assert out.dtype == xp.float32
    assert dropout_backward(xp.ones_like(out), cache).dtype == xp.float32
    np.testing.assert_array_equal(to_numpy(x), host)


@pytest.mark.gpu
def test_dropout_and_relu_cupy_match_numpy(cupy_xp, rng):
    x = rng.standard_normal((5, 7))
    out, _ = dropout_forward(x, 0.5, np.random.default_rng(3))
    out_gpu, _ = dropout_forward(to_device(x, cupy_xp), 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(to_numpy(out_gpu), out)  # host mask: identical draws
    relu_gpu, cache_gpu = relu_forward(to_device(x, cupy_xp))
    np.testing.assert_array_equal(to_numpy(relu_gpu), relu_forward(x)[0])
    dx_gpu = relu_backward(to_device(out, cupy_xp), cache_gpu)
    np.testing.assert_array_equal(
        to_numpy(dx_gpu), relu_backward(out, relu_forward(x)[1])
    )
