"""Whole-model gradients: every named parameter passes a float64 directional check.

For each model, the loss is the mean softmax cross-entropy of a tiny batch; BN is
in training mode (batch statistics, as in a training step) and dropout replays
one fixed mask at every forward. For every named parameter p, the analytic
directional derivative sum(dL/dp * u) along a random unit direction u must match
the centred difference (L(p + h u) - L(p - h u)) / 2h to a relative error below
1e-6.

The paper's Gaussian init (std 0.01) makes the AlexNets' logits and gradients
tiny (~1e-6), so the loss differences would drown in rounding; for the checks the
parameters are redrawn with He-scaled weights and nonzero biases / BN shifts.
That changes the point where the gradient is checked, not the code checked.
"""
import math

import numpy as np
import pytest

from lars_ref import nn
from lars_ref.backend import to_numpy
from lars_ref.functional import softmax_cross_entropy
from lars_ref.gradcheck import directional_check, relative_error
from lars_ref.models import build_model

CASES = {
    "alexnet_bn": dict(name="alexnet_bn", in_shape=(1, 8, 8)),
    "alexnet_lrn": dict(name="alexnet", in_shape=(1, 8, 8)),
    "resnet8_option_a": dict(name="resnet8", in_shape=(2, 8, 8)),
    "resnet8_option_b": dict(name="resnet8", in_shape=(2, 8, 8), shortcut="B"),
}
BATCH_SIZE = 4
NUM_CLASSES = 5
DROPOUT_SEED = 11


def redraw_parameters(model, rng):
    """He-scaled weights, small random biases, BN gamma near 1 and beta near 0."""
    for name, p in model.named_parameters():
        if name.endswith(".w"):
            fan_in = p.shape[0] if p.ndim == 2 else int(np.prod(p.shape[1:]))
            p[...] = rng.standard_normal(p.shape) * math.sqrt(2.0 / fan_in)
        elif name.endswith(".gamma"):
            p[...] = 1.0 + 0.1 * rng.standard_normal(p.shape)
        else:  # biases and BN beta
            p[...] = 0.1 * rng.standard_normal(p.shape)


def replay_dropout_masks(model):
    """Give every Dropout a fresh Generator of one seed: the same mask every forward."""
    for _, module in model.named_modules():
        if isinstance(module, nn.Dropout):
            module.rng = np.random.default_rng(DROPOUT_SEED)


def make_case(case, seed=0):
    spec = dict(CASES[case])
    model = build_model(spec.pop("name"), num_classes=NUM_CLASSES, dtype=np.float64,
                        seed=seed, **spec)
    rng = np.random.default_rng(seed + 100)
    redraw_parameters(model, rng)
    x = rng.standard_normal((BATCH_SIZE, *spec["in_shape"]))
    labels = rng.integers(0, NUM_CLASSES, size=BATCH_SIZE)
    return model, x, labels


def loss_and_backward(model, x, labels):
    """Train-mode forward, loss, backward; return the loss and dL/dx."""
    replay_dropout_masks(model)
    model.zero_grad()
    loss, dlogits = softmax_cross_entropy(model.forward(x, train=True), labels)
    dx = model.backward(dlogits)
    return float(to_numpy(loss)), dx


def loss_only(model, x, labels):
    replay_dropout_masks(model)
    return float(softmax_cross_entropy(model.forward(x, train=True), labels)[0])


@pytest.mark.parametrize("case", list(CASES))
def test_every_named_parameter_passes_directional_check(case):
    model, x, labels = make_case(case)
    loss_and_backward(model, x, labels)
    grads = {name: g.copy() for name, g in model.named_grads()}
    params = dict(model.named_parameters())
    assert len(params) >= 16
    rng = np.random.default_rng(7)
    for name in params:
        result = directional_check(lambda: loss_only(model, x, labels),
                                   {name: params[name]}, {name: grads[name]}, rng,
                                   h=1e-5)
        assert abs(result.analytic) > 1e-6, f"{case} {name}: gradient too small to test"
        assert result.relative_error < 1e-6, f"{case} {name}: {result}"


@pytest.mark.parametrize("case", ["alexnet_bn", "resnet8_option_a"])
def test_input_gradient_passes_directional_check(case):
    model, x, labels = make_case(case)
    _, dx = loss_and_backward(model, x, labels)
    result = directional_check(lambda: loss_only(model, x, labels), {"x": x}, {"x": dx},
                               np.random.default_rng(8), h=1e-5)
    assert result.relative_error < 1e-6, result


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["alexnet_bn", "resnet8_option_b"])
def test_cupy_forward_backward_matches_numpy(cupy_xp, case):
    """Same host init, batch and dropout mask: CuPy and NumPy agree in float64."""
    host_model, x, labels = make_case(case)
    device_model, _, _ = make_case(case)
    device_model.to(cupy_xp)
    host_loss, host_dx = loss_and_backward(host_model, x, labels)
    device_loss, device_dx = loss_and_backward(device_model, cupy_xp.asarray(x),
                                               cupy_xp.asarray(labels))
    assert device_loss == pytest.approx(host_loss, rel=1e-10)
    assert relative_error(to_numpy(device_dx), host_dx) < 1e-9
    device_grads = dict(device_model.named_grads())
    for name, g in host_model.named_grads():
        assert relative_error(to_numpy(device_grads[name]), g) < 1e-9, name
    for name, b in device_model.named_buffers():
        np.testing.assert_allclose(to_numpy(b), dict(host_model.named_buffers())[name],
                                   rtol=1e-10, atol=1e-12)
