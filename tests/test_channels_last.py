"""Channels-last models equal the NCHW ones: same parameters, outputs, gradients.

The models run their layers on (N, H, W, C) activations by default
(``lars_ref/nn/layout.py``); the NCHW build (``channels_last=False``, im2col) is
the reference. Same seed -> same state dict (names, shapes, values), and in
float64 the logits, dL/dx and every parameter gradient agree to 1e-12, with BN in
training mode (batch statistics) and the running statistics updated alike.
"""
import numpy as np
import pytest

from lars_ref import nn
from lars_ref.functional import conv_rows, softmax_cross_entropy
from lars_ref.models import build_model
from lars_ref.nn.layout import to_channels_first, to_channels_last

MODELS = {
    "resnet8_option_a": dict(name="resnet8", in_shape=(3, 8, 8)),
    "resnet8_option_b": dict(name="resnet8", in_shape=(3, 8, 8), shortcut="B"),
    "alexnet_bn_small": dict(name="alexnet_bn", in_shape=(3, 16, 16), dropout=0.0),
    "alexnet_lrn_small": dict(name="alexnet", in_shape=(3, 16, 16), dropout=0.0),
    "alexnet_paper_conv1": dict(name="alexnet", in_shape=(3, 131, 131), width=1 / 32,
                                dropout=0.0),
}


def relative(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def step(model, x, labels):
    model.zero_grad()
    loss, dlogits = softmax_cross_entropy(model.forward(x, train=True), labels)
    dx = model.backward(dlogits)
    return model.forward(x, train=False), dx, dict(model.named_grads())


@pytest.mark.parametrize("case", MODELS.values(), ids=MODELS.keys())
def test_channels_last_model_equals_nchw_model(case, rng):
    spec = dict(case)
    name = spec.pop("name")
    build = dict(num_classes=5, dtype=np.float64, seed=4, **spec)
    fast = build_model(name, **build)
    reference = build_model(name, channels_last=False, **build)
    assert isinstance(fast, nn.ChannelsLastNetwork)
    reference_state = reference.state_dict()
    for key, value in fast.state_dict().items():
        np.testing.assert_array_equal(value, reference_state[key])
    assert list(fast.state_dict()) == list(reference_state)
    x = rng.standard_normal((3, *spec["in_shape"]))
    labels = rng.integers(0, 5, size=3)
    got, expected = step(fast, x, labels), step(reference, x, labels)
    assert relative(got[0], expected[0]) < 1e-12           # logits (eval mode)
    assert got[1].shape == x.shape
    assert relative(got[1], expected[1]) < 1e-12           # dL/dx, NCHW
    for key, grad in expected[2].items():
        assert relative(got[2][key], grad) < 1e-12, key
    fast_state = fast.state_dict()
    for key, value in reference.state_dict().items():      # running statistics
        np.testing.assert_allclose(fast_state[key], value, rtol=1e-12, atol=1e-15)


def test_nchw_checkpoint_loads_into_channels_last_model(rng):
    """A state dict saved by the NCHW build (every checkpoint before the layout
    change) loads unchanged and gives the same logits."""
    build = dict(num_classes=10, in_shape=(3, 8, 8), dtype=np.float64)
    old = build_model("resnet8", channels_last=False, seed=1, **build)
    new = build_model("resnet8", seed=2, **build)
    new.load_state_dict(old.state_dict())
    x = rng.standard_normal((2, 3, 8, 8))
    assert relative(new.forward(x, train=False), old.forward(x, train=False)) < 1e-12


@pytest.mark.parametrize("kernel, stride, pad, size", [
    (3, 2, 1, 8),    # ResNet downsampling: only a padding row is left unread
    (1, 2, 0, 7),    # option-B projection: rows skipped by design
    (11, 4, 0, 17),  # BVLC conv1 geometry: real pixels unread (the layer crops)
    (3, 2, 0, 8),    # the last real row unread
])
def test_conv_layer_floor_mode_is_the_same_in_both_layouts(kernel, stride, pad, size,
                                                           rng):
    layers = [nn.Conv2d(4, 6, kernel, stride=stride, pad=pad, groups=2,
                        rng=np.random.default_rng(5), dtype=np.float64,
                        channels_last=channels_last) for channels_last in (False, True)]
    x = rng.standard_normal((2, 4, size, size))
    reference_out = layers[0].forward(x)
    out = to_channels_first(layers[1].forward(to_channels_last(x)))
    assert relative(out, reference_out) < 1e-12
    dout = rng.standard_normal(out.shape)
    reference_dx = layers[0].backward(dout)
    dx = to_channels_first(layers[1].backward(to_channels_last(dout)))
    assert relative(dx, reference_dx) < 1e-12
    for name in ("w", "b"):
        assert relative(layers[1].grads[name], layers[0].grads[name]) < 1e-12


@pytest.mark.parametrize("case", ["resnet8_option_a", "alexnet_bn_small"])
def test_two_worker_threads_train_the_same_model(case, rng):
    """Convolution chunks, BN and ReLU rows and the residual additions shared by two
    threads (set_conv_workers) give the one-thread step to rounding (float64)."""
    spec = dict(MODELS[case])
    name = spec.pop("name")
    x = rng.standard_normal((4, *spec["in_shape"]))
    labels = rng.integers(0, 5, size=4)
    results = []
    try:
        for workers in (1, 2):
            conv_rows.set_conv_workers(workers)
            model = build_model(name, num_classes=5, dtype=np.float64, seed=4, **spec)
            results.append(step(model, x, labels))
    finally:
        conv_rows.set_conv_workers(1)
    (logits_1, dx_1, grads_1), (logits_2, dx_2, grads_2) = results
    assert relative(logits_2, logits_1) < 1e-13
    assert relative(dx_2, dx_1) < 1e-13
    for key, grad in grads_1.items():
        assert relative(grads_2[key], grad) < 1e-13, key
