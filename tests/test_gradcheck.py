"""The gradient checkers themselves: known derivatives, and a whole tiny network."""

import numpy as np
import pytest

from lars_ref import functional as F
from lars_ref.gradcheck import (
    assert_gradients_match,
    directional_check,
    numerical_gradient,
    numerical_gradients,
    relative_error,
)


def test_numerical_gradient_of_known_function(rng):
    # f(x) = x^3 elementwise; dL/dx = 3 x^2 * dout. Central differences are exact
    # for cubics up to the h^2 f'''/6 = h^2 term: 1e-12 here.
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda x: x**3, x, dout)
    np.testing.assert_allclose(grad, 3 * x**2 * dout, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_does_not_modify_x(rng):
    x = rng.standard_normal(5)
    x_copy = x.copy()
    numerical_gradient(np.sin, x, np.ones(5))
    np.testing.assert_array_equal(x, x_copy)


def test_numerical_gradients_lines_up_with_arguments(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    dout = rng.standard_normal(3)
    da, none, db = numerical_gradients(lambda a, c, b: a * b, [a, None, b], dout)
    assert none is None
    np.testing.assert_allclose(da, b * dout, rtol=1e-8)
    np.testing.assert_allclose(db, a * dout, rtol=1e-8)


def test_relative_error_values():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert relative_error([3.0, 4.0], [0.0, 0.0]) == pytest.approx(1.0)
    assert relative_error([1.0, 0.0], [1.0, 1e-3]) == pytest.approx(
        1e-3 / np.sqrt(1 + 1e-6)
    )


def test_directional_check_on_a_quadratic(rng):
    # L = sum(w^2) / 2 + sum(b); dL/dw = w, dL/db = 1.
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    saved = {k: v.copy() for k, v in params.items()}
    grads = {"w": params["w"].copy(), "b": np.ones(2)}

    def loss():
        return 0.5 * np.sum(params["w"] ** 2) + np.sum(params["b"])

    result = directional_check(loss, params, grads, rng)
    assert result.relative_error < 1e-8
    for name in params:  # restored exactly
        np.testing.assert_array_equal(params[name], saved[name])
    wrong = directional_check(loss, params, {"w": 2 * grads["w"], "b": grads["b"]}, rng)
    assert wrong.relative_error > 1e-3


def test_directional_check_on_a_small_network(rng):
    # conv -> BN (train) -> ReLU -> max pool -> linear -> loss, all hand-written ops.
    x = rng.standard_normal((4, 2, 6, 6))
    labels = np.array([0, 2, 1, 2])
    params = {
        "conv.w": 0.5 * rng.standard_normal((3, 2, 3, 3)),
        "conv.b": 0.1 * rng.standard_normal(3),
        "bn.gamma": rng.uniform(0.5, 1.5, 3),
        "bn.beta": 0.1 * rng.standard_normal(3),
        "fc.w": 0.5 * rng.standard_normal((12, 3)),
        "fc.b": np.zeros(3),
    }
    running = (np.zeros(3), np.ones(3))

    def forward_backward():
        p = params
        h1, c1 = F.conv2d_forward(x, p["conv.w"], p["conv.b"], stride=1, pad=1)
        h2, c2, _, _ = F.batchnorm_forward(
            h1, p["bn.gamma"], p["bn.beta"], *running, train=True
        )
        h3, c3 = F.relu_forward(h2)
        h4, c4 = F.max_pool2d_forward(h3, 3, 3)
        logits, c5 = F.linear_forward(h4.reshape(4, -1), p["fc.w"], p["fc.b"])
        loss, dlogits = F.softmax_cross_entropy(logits, labels)
        dh4, dfc_w, dfc_b = F.linear_backward(dlogits, c5)
        dh3 = F.max_pool2d_backward(dh4.reshape(h4.shape), c4)
        dh1, dgamma, dbeta = F.batchnorm_backward(F.relu_backward(dh3, c3), c2)
        _, dconv_w, dconv_b = F.conv2d_backward(dh1, c1)
        grads = {
            "conv.w": dconv_w,
            "conv.b": dconv_b,
            "bn.gamma": dgamma,
            "bn.beta": dbeta,
            "fc.w": dfc_w,
            "fc.b": dfc_b,
        }
        return float(loss), grads

    _, grads = forward_backward()
    result = directional_check(lambda: forward_backward()[0], params, grads, rng)
    assert result.relative_error < 1e-6, result


def test_assert_gradients_match_catches_a_wrong_gradient_and_a_stray_none():
    good = [np.array([1.0, 2.0]), None]
    assert_gradients_match(good, [np.array([1.0, 2.0]), None], ("dx", "db"))
    with pytest.raises(AssertionError, match="dx: relative error"):
        assert_gradients_match([np.array([1.0, 2.1]), None], good, ("dx", "db"))
    with pytest.raises(AssertionError, match="db should be None"):
        assert_gradients_match([good[0], np.zeros(2)], good, ("dx", "db"))
