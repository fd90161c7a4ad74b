"""softmax_cross_entropy: closed forms, finite differences, stability, errors."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import ShapeError, softmax_cross_entropy
from lars_ref.gradcheck import numerical_gradient, relative_error


def test_loss_uniform_logits_is_log_k():
    N, K = 4, 10
    loss, dlogits = softmax_cross_entropy(np.zeros((N, K)), np.arange(N))
    assert float(loss) == pytest.approx(np.log(K), rel=1e-15)
    expected = np.full((N, K), 1.0 / K)
    expected[np.arange(N), np.arange(N)] -= 1.0
    np.testing.assert_allclose(dlogits, expected / N, rtol=1e-15)


def test_loss_hand_computed_two_classes():
    # logits (0, log 3): softmax = (1/4, 3/4); label 1 -> loss = -log(3/4).
    loss, dlogits = softmax_cross_entropy(np.array([[0.0, np.log(3.0)]]), np.array([1]))
    assert float(loss) == pytest.approx(-np.log(0.75), rel=1e-14)
    np.testing.assert_allclose(dlogits, [[0.25, -0.25]], rtol=1e-14)


def test_loss_gradient_matches_finite_differences(rng):
    logits = rng.standard_normal((5, 7))
    labels = rng.integers(0, 7, size=5)
    _, dlogits = softmax_cross_entropy(logits, labels)
    numerical = numerical_gradient(
        lambda z: softmax_cross_entropy(z, labels)[0], logits, np.array(1.0)
    )
    assert relative_error(dlogits, numerical) < 1e-6
    np.testing.assert_allclose(dlogits, numerical, rtol=1e-6, atol=1e-9)


def test_loss_is_stable_for_huge_logits():
    # Shifting logits by a constant changes nothing, even past exp's overflow at ~710.
    logits = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1001.0]])
    labels = np.array([1, 0])
    loss, dlogits = softmax_cross_entropy(logits, labels)
    loss_ref, dlogits_ref = softmax_cross_entropy(
        logits - logits.max(1, keepdims=True), labels
    )
    assert np.isfinite(loss) and float(loss) == pytest.approx(
        float(loss_ref), rel=1e-14
    )
    np.testing.assert_allclose(dlogits, dlogits_ref, rtol=1e-13)


def test_loss_preserves_float32_and_inputs(xp, rng):
    host = rng.standard_normal((3, 4)).astype(np.float32)
    logits, labels = to_device(host, xp), to_device(np.array([0, 3, 1]), xp)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    assert loss.dtype == xp.float32 and dlogits.dtype == xp.float32
    np.testing.assert_array_equal(to_numpy(logits), host)
    np.testing.assert_array_equal(to_numpy(labels), [0, 3, 1])


@pytest.mark.parametrize(
    "logits_shape, labels, error, message",
    [
        (
            (2, 3),
            [0, 3],
            ValueError,
            "labels must lie in \\[0, 3\\) for 3 classes.* 0 to 3",
        ),
        ((2, 3), [-1, 0], ValueError, "labels must lie in \\[0, 3\\)"),
        (
            (2, 3),
            [0, 1, 2],
            ShapeError,
            "labels must have shape \\(N,\\) = \\(2,\\), got \\(3,\\)",
        ),
        ((2, 3), [[0], [1]], ShapeError, "labels must have shape \\(N,\\)"),
        ((6,), [0], ShapeError, "logits must be \\(N, K\\), got shape \\(6,\\)"),
        (
            (2, 3),
            [0.0, 1.0],
            ValueError,
            "labels must be integer class indices, got dtype float64",
        ),
    ],
)
def test_loss_rejects_bad_labels(logits_shape, labels, error, message):
    with pytest.raises(error, match=message):
        softmax_cross_entropy(np.zeros(logits_shape), np.array(labels))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_loss_rejects_non_finite_logits(bad):
    logits = np.zeros((2, 3))
    logits[1, 2] = bad
    with pytest.raises(ValueError, match="logits contain NaN or Inf"):
        softmax_cross_entropy(logits, np.array([0, 1]))


@pytest.mark.gpu
def test_loss_cupy_matches_numpy(cupy_xp, rng):
    logits, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, size=6)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    loss_gpu, dlogits_gpu = softmax_cross_entropy(
        to_device(logits, cupy_xp), to_device(labels, cupy_xp)
    )
    assert float(to_numpy(loss_gpu)) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(to_numpy(dlogits_gpu), dlogits, rtol=1e-12, atol=1e-15)
