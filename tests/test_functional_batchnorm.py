"""Batch norm: finite differences, invariants, running stats, oracle, dtype, errors."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import (
    ShapeError,
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_forward_naive,
)
from lars_ref.gradcheck import assert_gradients_match, numerical_gradients

SHAPES = {"nchw": (3, 2, 3, 4), "nd": (5, 3)}
AFFINE = {"scale_shift": True, "no_scale_shift": False}


def make_bn_inputs(rng, shape, affine, dtype=np.float64):
    C = shape[1]
    x = (
        rng.standard_normal(shape)
        * rng.uniform(0.5, 2.0, size=C).reshape((1, C) + (1,) * (len(shape) - 2))
        + 0.5
    ).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, size=C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine else None
    running_mean = rng.standard_normal(C).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, size=C).astype(dtype)
    return x, gamma, beta, running_mean, running_var


def per_channel_sum(a):
    return a.sum(axis=(0, 2, 3)) if a.ndim == 4 else a.sum(axis=0)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", AFFINE.values(), ids=AFFINE.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_batchnorm_gradients_match_finite_differences(shape, affine, train, rng):
    x, gamma, beta, rm, rv = make_bn_inputs(rng, shape, affine)
    out, cache, _, _ = batchnorm_forward(x, gamma, beta, rm, rv, train=train)
    dout = rng.standard_normal(out.shape)
    analytic = batchnorm_backward(dout, cache)

    def forward(x, gamma, beta):
        return batchnorm_forward(x, gamma, beta, rm, rv, train=train)[0]

    numerical = numerical_gradients(forward, [x, gamma, beta], dout)
    assert_gradients_match(analytic, numerical, ("dx", "dgamma", "dbeta"))


@pytest.mark.parametrize("eps", [1e-5, 1e-12])
@pytest.mark.parametrize("affine", AFFINE.values(), ids=AFFINE.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_batchnorm_train_dx_sums_to_zero_and_is_orthogonal_to_x(
    shape, affine, eps, rng
):
    # out does not change when a channel of x is shifted, so per channel sum(dx) = 0.
    # It does not change when a channel is scaled either, up to eps: the exact
    # identity is sum(dx * (x - mu)) = eps / (var + eps) * sum(dx_hat * x_hat),
    # which vanishes as eps -> 0.
    x, gamma, beta, rm, rv = make_bn_inputs(rng, shape, affine)
    out, cache, _, _ = batchnorm_forward(x, gamma, beta, rm, rv, train=True, eps=eps)
    dout = rng.standard_normal(out.shape)
    dx, _, _ = batchnorm_backward(dout, cache)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    centred = x - x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes)
    dx_hat = (
        dout if gamma is None else dout * gamma.reshape((1, -1) + (1,) * (x.ndim - 2))
    )
    np.testing.assert_allclose(per_channel_sum(dx), 0.0, atol=1e-12)
    expected = eps / (var + eps) * per_channel_sum(dx_hat * cache.x_hat)
    np.testing.assert_allclose(per_channel_sum(dx * centred), expected, atol=1e-12)
    if eps < 1e-10:
        np.testing.assert_allclose(per_channel_sum(dx * centred), 0.0, atol=1e-10)


def test_batchnorm_eval_dx_is_affine_closed_form(rng):
    # Evaluation mode: the statistics are constants, dx = dout * gamma / sqrt(rv + eps).
    x, gamma, beta, rm, rv = make_bn_inputs(rng, SHAPES["nchw"], True)
    out, cache, _, _ = batchnorm_forward(x, gamma, beta, rm, rv, train=False, eps=1e-3)
    dout = rng.standard_normal(out.shape)
    dx, _, _ = batchnorm_backward(dout, cache)
    expected = dout * (gamma / np.sqrt(rv + 1e-3)).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(dx, expected, rtol=1e-14)
    expected_out = (x - rm.reshape(1, -1, 1, 1)) / np.sqrt(rv + 1e-3).reshape(
        1, -1, 1, 1
    ) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(out, expected_out, rtol=1e-13)


def test_batchnorm_train_output_and_running_statistics_closed_form(rng):
    x = rng.standard_normal((4, 3, 2, 5)) * 3.0 + 1.0
    rm, rv = np.zeros(3), np.ones(3)
    out, _, new_rm, new_rv = batchnorm_forward(
        x, None, None, rm, rv, train=True, momentum=0.9, eps=1e-5
    )
    mu = x.mean(axis=(0, 2, 3))
    var_biased = x.var(axis=(0, 2, 3))
    var_unbiased = x.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1, ddof=1)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-14)
    np.testing.assert_allclose(
        out.var(axis=(0, 2, 3)), var_biased / (var_biased + 1e-5), rtol=1e-12
    )
    np.testing.assert_allclose(new_rm, 0.1 * mu, rtol=1e-13)
    np.testing.assert_allclose(new_rv, 0.9 * 1.0 + 0.1 * var_unbiased, rtol=1e-13)


def test_batchnorm_eval_returns_running_statistics_unchanged(rng):
    x, gamma, beta, rm, rv = make_bn_inputs(rng, SHAPES["nd"], True)
    _, _, new_rm, new_rv = batchnorm_forward(x, gamma, beta, rm, rv, train=False)
    assert new_rm is rm and new_rv is rv


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", AFFINE.values(), ids=AFFINE.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_batchnorm_matches_naive_loops(shape, affine, train, rng):
    args = make_bn_inputs(rng, shape, affine)
    out, _, new_rm, new_rv = batchnorm_forward(
        *args, train=train, momentum=0.8, eps=1e-4
    )
    naive_out, naive_rm, naive_rv = batchnorm_forward_naive(
        *args, train=train, momentum=0.8, eps=1e-4
    )
    np.testing.assert_allclose(out, naive_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(new_rm, naive_rm, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(new_rv, naive_rv, rtol=1e-13)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_preserves_float32_and_inputs(train, xp, rng):
    host = make_bn_inputs(rng, SHAPES["nchw"], True, np.float32)
    args = [to_device(a, xp) for a in host]
    out, cache, new_rm, new_rv = batchnorm_forward(*args, train=train)
    grads = batchnorm_backward(xp.ones_like(out), cache)
    for a in (out, new_rm, new_rv, *grads):
        assert a.dtype == xp.float32
    for original, a in zip(host, args):
        np.testing.assert_array_equal(original, to_numpy(a))


@pytest.mark.parametrize(
    "x_shape, c_shape, gamma_shape, train, message",
    [
        (
            (2, 3, 4),
            (3,),
            (3,),
            True,
            "batchnorm: x must be \\(N, C, H, W\\) or \\(N, D\\), "
            "got shape \\(2, 3, 4\\)",
        ),
        (
            (2, 3),
            (3,),
            (4,),
            True,
            "batchnorm: gamma must have shape \\(3,\\), got \\(4,\\)",
        ),
        (
            (2, 3, 2, 2),
            (2,),
            (3,),
            True,
            "batchnorm: running_mean must have shape \\(3,\\)",
        ),
        (
            (1, 3),
            (3,),
            (3,),
            True,
            "more than one value per channel.*\\(1, 3\\) gives m = 1",
        ),
    ],
)
def test_batchnorm_rejects_bad_shapes(x_shape, c_shape, gamma_shape, train, message):
    with pytest.raises(ShapeError, match=message):
        batchnorm_forward(
            np.zeros(x_shape),
            np.ones(gamma_shape),
            None,
            np.zeros(c_shape),
            np.ones(c_shape),
            train=train,
        )


def test_batchnorm_rejects_bad_hyperparameters():
    x, stats = np.zeros((2, 3)), (None, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="momentum must be in \\[0, 1\\], got 1.5"):
        batchnorm_forward(x, *stats, train=True, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be positive, got 0"):
        batchnorm_forward(x, *stats, train=True, eps=0)
    # One sample is fine in evaluation mode (running statistics are used).
    batchnorm_forward(np.zeros((1, 3)), *stats, train=False)


@pytest.mark.gpu
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_cupy_matches_numpy(train, cupy_xp, rng):
    host = make_bn_inputs(rng, SHAPES["nchw"], True)
    out, cache, rm, rv = batchnorm_forward(*host, train=train)
    dout = rng.standard_normal(out.shape)
    gpu = batchnorm_forward(*(to_device(a, cupy_xp) for a in host), train=train)
    for a_gpu, a in zip((gpu[0], gpu[2], gpu[3]), (out, rm, rv)):
        np.testing.assert_allclose(to_numpy(a_gpu), a, rtol=1e-12, atol=1e-14)
    grads_gpu = batchnorm_backward(to_device(dout, cupy_xp), gpu[1])
    for g_gpu, g in zip(grads_gpu, batchnorm_backward(dout, cache)):
        np.testing.assert_allclose(to_numpy(g_gpu), g, rtol=1e-12, atol=1e-14)
