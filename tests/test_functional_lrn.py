"""Local response normalisation: finite differences, closed forms, dtype, errors."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import ShapeError, lrn_backward, lrn_forward
from lars_ref.gradcheck import numerical_gradient, relative_error

# size, alpha, beta, k: AlexNet's own, and a strongly non-linear one (large alpha).
LRN_PARAMS = {
    "alexnet": (5, 1e-4, 0.75, 1.0),
    "strong_size3": (3, 0.8, 0.75, 2.0),
    "strong_size5": (5, 2.0, 0.5, 1.0),
}


@pytest.mark.parametrize("params", LRN_PARAMS.values(), ids=LRN_PARAMS.keys())
def test_lrn_gradient_matches_finite_differences(params, rng):
    size, alpha, beta, k = params
    x = rng.standard_normal((2, 7, 3, 2))
    out, cache = lrn_forward(x, size, alpha, beta, k)
    dout = rng.standard_normal(out.shape)
    dx = lrn_backward(dout, cache)
    numerical = numerical_gradient(
        lambda x: lrn_forward(x, size, alpha, beta, k)[0], x, dout
    )
    assert relative_error(dx, numerical) < 1e-6
    np.testing.assert_allclose(dx, numerical, rtol=1e-6, atol=1e-8)


def test_lrn_closed_form_by_hand():
    # Three channels, one pixel, size 3: the window of channel 0 is {0, 1},
    # of channel 1 is {0, 1, 2}, of channel 2 is {1, 2}.
    a = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    size, alpha, beta, k = 3, 0.3, 0.5, 2.0
    out, _ = lrn_forward(a, size, alpha, beta, k)
    sums = np.array([1 + 4, 1 + 4 + 9, 4 + 9])
    expected = np.array([1.0, 2.0, 3.0]) / (k + alpha / size * sums) ** beta
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-15)


def test_lrn_single_channel_reduces_to_pointwise_formula(rng):
    x = rng.standard_normal((2, 1, 4, 4))
    out, _ = lrn_forward(x, 5, 0.5, 0.75, 1.0)
    np.testing.assert_allclose(out, x / (1.0 + 0.5 / 5 * x**2) ** 0.75, rtol=1e-15)


def test_lrn_preserves_float32_and_input(xp, rng):
    host = rng.standard_normal((2, 6, 3, 3)).astype(np.float32)
    x = to_device(host, xp)
    out, cache = lrn_forward(x)
    assert out.dtype == xp.float32
    assert lrn_backward(xp.ones_like(out), cache).dtype == xp.float32
    np.testing.assert_array_equal(to_numpy(x), host)


def test_lrn_rejects_bad_input():
    with pytest.raises(ValueError, match="lrn: size must be odd .* got 4"):
        lrn_forward(np.zeros((1, 6, 2, 2)), size=4)
    with pytest.raises(
        ShapeError, match="lrn: x must be \\(N, C, H, W\\), got shape \\(2, 6\\)"
    ):
        lrn_forward(np.zeros((2, 6)))


@pytest.mark.gpu
def test_lrn_cupy_matches_numpy(cupy_xp, rng):
    x = rng.standard_normal((2, 7, 3, 3))
    out, cache = lrn_forward(x, 5, 0.5, 0.75, 2.0)
    dout = rng.standard_normal(out.shape)
    out_gpu, cache_gpu = lrn_forward(to_device(x, cupy_xp), 5, 0.5, 0.75, 2.0)
    np.testing.assert_allclose(to_numpy(out_gpu), out, rtol=1e-12)
    np.testing.assert_allclose(
        to_numpy(lrn_backward(to_device(dout, cupy_xp), cache_gpu)),
        lrn_backward(dout, cache),
        rtol=1e-12,
        atol=1e-14,
    )
