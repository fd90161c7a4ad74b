"""The loop versions of the backward passes (conv, pooling, batch norm) as oracles.

Each loop backward is checked against finite differences (so the oracle itself is
right) and then the fast backward against it, in float64.
"""
import numpy as np
import pytest

from lars_ref.functional import (avg_pool2d_backward, avg_pool2d_backward_naive,
                                 avg_pool2d_forward, batchnorm_backward,
                                 batchnorm_backward_naive, batchnorm_forward,
                                 conv2d_backward, conv2d_backward_naive, conv2d_forward,
                                 max_pool2d_backward, max_pool2d_backward_naive,
                                 max_pool2d_forward)
from lars_ref.gradcheck import assert_gradients_match, numerical_gradients
from tests.test_functional_batchnorm import AFFINE, SHAPES, make_bn_inputs
from tests.test_functional_conv import CONV_CASES, make_conv_inputs
from tests.test_functional_pool import POOL_CASES, distinct_values


def close(a, b, rtol=1e-12):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def close_gradients(fast, slow):
    """The fast backward's gradients equal the loop twin's (None where it gives None)."""
    for fast_grad, slow_grad in zip(fast, slow, strict=True):
        if slow_grad is None:
            assert fast_grad is None
        else:
            close(fast_grad, slow_grad)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_loop_backward_is_the_gradient_and_equals_the_fast_one(case, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = case
    x, w, b = make_conv_inputs(rng, x_shape, w_shape, with_bias)
    out, cache = conv2d_forward(x, w, b, stride, pad, groups)
    dout = rng.standard_normal(out.shape)
    loops = conv2d_backward_naive(dout, x, w, stride, pad, groups, with_bias)
    numerical = numerical_gradients(
        lambda x, w, b: conv2d_forward(x, w, b, stride, pad, groups)[0], [x, w, b],
        dout)
    assert_gradients_match(loops, numerical, ("dx", "dw", "db"))
    close_gradients(conv2d_backward(dout, cache), loops)


POOLS = {
    "max": (max_pool2d_forward, max_pool2d_backward, max_pool2d_backward_naive),
    "avg": (avg_pool2d_forward, avg_pool2d_backward,
            lambda dout, x, size, stride: avg_pool2d_backward_naive(dout, x.shape, size,
                                                                    stride)),
}


@pytest.mark.parametrize("kind", POOLS.keys())
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pool_loop_backward_is_the_gradient_and_equals_the_fast_one(kind, case, rng):
    forward, backward, backward_naive = POOLS[kind]
    x_shape, size, stride = case
    x = distinct_values(rng, x_shape)
    out, cache = forward(x, size, stride)
    dout = rng.standard_normal(out.shape)
    loops = backward_naive(dout, x, size, stride)
    numerical = numerical_gradients(lambda x: forward(x, size, stride)[0], [x], dout)
    assert_gradients_match([loops], numerical, ("dx",))
    close(backward(dout, cache), loops)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", AFFINE.values(), ids=AFFINE.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_batchnorm_loop_backward_is_the_gradient_and_equals_the_fast_one(
        shape, affine, train, rng):
    x, gamma, beta, running_mean, running_var = make_bn_inputs(rng, shape, affine)
    options = dict(train=train, momentum=0.9, eps=1e-4)
    out, cache, _, _ = batchnorm_forward(x, gamma, beta, running_mean, running_var,
                                         **options)
    dout = rng.standard_normal(out.shape)
    loops = batchnorm_backward_naive(dout, x, gamma, running_mean, running_var,
                                     train=train, eps=1e-4, has_beta=affine)

    def forward(x, gamma, beta):
        return batchnorm_forward(x, gamma, beta, running_mean, running_var,
                                 **options)[0]

    numerical = numerical_gradients(forward, [x, gamma, beta], dout)
    assert_gradients_match(loops, numerical, ("dx", "dgamma", "dbeta"))
    close_gradients(batchnorm_backward(dout, cache), loops)
