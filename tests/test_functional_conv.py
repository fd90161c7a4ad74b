"""conv2d and im2col/col2im: finite differences, the loop oracle, dtype, errors, GPU."""

import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import (
    ShapeError,
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_forward_naive,
    im2col,
)
from lars_ref.functional.conv import (conv2d_input_grad_by_col2im,
                                      conv2d_input_grad_by_convolution)
from lars_ref.functional.im2col import output_size
from lars_ref.gradcheck import assert_gradients_match, numerical_gradients

# (N, C, H, W), (F, C/groups, HH, WW), stride, pad, groups, with_bias
CONV_CASES = {
    "3x3": ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, 1, True),
    "stride2_pad1_odd_nonsquare": ((2, 2, 7, 5), (3, 2, 3, 3), 2, 1, 1, True),
    "groups2_pad1_rect_kernel": ((3, 4, 6, 6), (4, 2, 3, 2), 1, 1, 2, True),
    "1x1_stride2_groups3": ((2, 6, 5, 5), (6, 2, 1, 1), 2, 0, 3, True),
    "1x1_no_bias": ((2, 3, 4, 4), (2, 3, 1, 1), 1, 0, 1, False),
    "stride3_pad2_no_bias": ((2, 2, 8, 5), (3, 2, 3, 3), 3, 2, 1, False),
    "resnet_downsample_floor": ((2, 2, 8, 6), (3, 2, 3, 3), 2, 1, 1, True),
    "1x1_stride2_even_floor": ((2, 3, 6, 6), (4, 3, 1, 1), 2, 0, 1, False),
}


def make_conv_inputs(rng, x_shape, w_shape, with_bias, dtype=np.float64):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    return x, w, b


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_gradients_match_finite_differences(case, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = case
    x, w, b = make_conv_inputs(rng, x_shape, w_shape, with_bias)
    out, cache = conv2d_forward(x, w, b, stride, pad, groups)
    dout = rng.standard_normal(out.shape)
    analytic = conv2d_backward(dout, cache)

    def forward(x, w, b):
        return conv2d_forward(x, w, b, stride, pad, groups)[0]

    numerical = numerical_gradients(forward, [x, w, b], dout)
    assert_gradients_match(analytic, numerical, ("dx", "dw", "db"))


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_matches_naive_loops(case, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = case
    x, w, b = make_conv_inputs(rng, x_shape, w_shape, with_bias)
    out, _ = conv2d_forward(x, w, b, stride, pad, groups)
    expected = conv2d_forward_naive(x, w, b, stride, pad, groups)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "in_size, window, stride, pad, expected",
    [
        (32, 3, 2, 1, 16),  # ResNet downsampling conv: only padding is left unread
        (32, 1, 2, 0, 16),  # ResNet 1x1 projection shortcut: skips pixels by design
        (224, 7, 2, 3, 112),  # ResNet-50 stem
        (227, 11, 4, 0, 55),  # AlexNet conv1
        (55, 3, 2, 0, 27),  # AlexNet pool1
        (5, 5, 1, 0, 1),
    ],
)
def test_output_size_follows_the_floor_rule(in_size, window, stride, pad, expected):
    assert output_size("op", in_size, window, stride, pad, "H") == expected


@pytest.mark.parametrize(
    "in_size, window, stride, pad", [(32, 3, 2, 0), (7, 2, 2, 0), (13, 5, 4, 1)]
)
def test_output_size_refuses_to_drop_real_pixels(in_size, window, stride, pad):
    with pytest.raises(ShapeError, match="op: .* input row\\(s\\) of H unread"):
        output_size("op", in_size, window, stride, pad, "H")


def test_conv2d_closed_form_single_patch():
    # A 2x2 image, 2x2 kernel, no padding: one output = the dot product + bias.
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = np.array([[[[0.5, -1.0], [2.0, 0.25]]]])
    out, _ = conv2d_forward(x, w, np.array([0.1]))
    assert out.shape == (1, 1, 1, 1)
    assert out[0, 0, 0, 0] == pytest.approx(0.5 - 2.0 + 6.0 + 1.0 + 0.1)


def test_im2col_and_col2im_are_adjoint(rng):
    # <im2col(x), c> == <x, col2im(c)> for any x, c: col2im is the transpose of im2col.
    x = rng.standard_normal((2, 3, 7, 5))
    HH, WW, stride, pad, Ho, Wo = 3, 3, 2, 1, 4, 3
    cols = im2col(x, HH, WW, stride, pad, Ho, Wo)
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x * col2im(c, x.shape, HH, WW, stride, pad, Ho, Wo))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_im2col_layout_entry_by_entry(rng):
    # cols[(c*HH + i)*WW + j, (n*Ho + ho)*Wo + wo]
    #     = x_pad[n, c, ho*stride + i, wo*stride + j]
    N, C, H, W, HH, WW, stride, pad = 2, 3, 5, 4, 3, 2, 2, 1
    Ho, Wo = (H + 2 * pad - HH) // stride + 1, (W + 2 * pad - WW) // stride + 1
    x = rng.standard_normal((N, C, H, W))
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = im2col(x, HH, WW, stride, pad, Ho, Wo)
    assert cols.shape == (C * HH * WW, N * Ho * Wo)
    for n, c, i, j, ho, wo in np.ndindex(N, C, HH, WW, Ho, Wo):
        assert (
            cols[(c * HH + i) * WW + j, (n * Ho + ho) * Wo + wo]
            == x_pad[n, c, ho * stride + i, wo * stride + j]
        )


def test_conv2d_preserves_float32(xp, rng):
    x, w, b = make_conv_inputs(rng, (2, 4, 6, 6), (4, 2, 3, 3), True, np.float32)
    x, w, b = (to_device(a, xp) for a in (x, w, b))
    out, cache = conv2d_forward(x, w, b, stride=1, pad=1, groups=2)
    grads = conv2d_backward(xp.ones_like(out), cache)
    assert out.dtype == xp.float32
    assert all(g.dtype == xp.float32 for g in grads)


def test_conv2d_does_not_mutate_inputs(rng):
    x, w, b = make_conv_inputs(rng, (2, 2, 5, 5), (3, 2, 3, 3), True)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = conv2d_forward(x, w, b, stride=2, pad=1)
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    conv2d_backward(dout, cache)
    for original, copy in zip((x, w, b, dout), (*copies, dout_copy)):
        np.testing.assert_array_equal(original, copy)


BAD_CONV_ARGS = {
    "x_not_4d": (
        (3, 5, 5),
        (2, 3, 3, 3),
        {},
        "x must be \\(N, C, H, W\\).*\\(3, 5, 5\\)",
    ),
    "w_not_4d": ((1, 3, 5, 5), (2, 27), {}, "w must be .*\\(2, 27\\)"),
    "channel_mismatch": ((1, 3, 5, 5), (2, 4, 3, 3), {}, "x has 3 channels .* 4"),
    "groups_channel_mismatch": (
        (1, 4, 5, 5),
        (2, 1, 3, 3),
        {"groups": 2},
        "x has 4 channels but w expects .* = 2",
    ),
    "channels_not_divisible": (
        (1, 3, 5, 5),
        (4, 1, 3, 3),
        {"groups": 2},
        "divisible by groups.*C=3",
    ),
    "kernel_too_large": (
        (1, 1, 3, 3),
        (1, 1, 5, 5),
        {"pad": 0},
        "window 5 is larger than the padded input H = 3",
    ),
    "floor_would_drop_pixels": (
        (1, 1, 6, 6),
        (1, 1, 3, 3),
        {"stride": 2},
        "\\(6 \\+ 2\\*0 - 3\\) / 2 leaves the last 1 input row",
    ),
    "bad_stride": (
        (1, 1, 5, 5),
        (1, 1, 3, 3),
        {"stride": 0},
        "stride must be an integer",
    ),
}


@pytest.mark.parametrize("case", BAD_CONV_ARGS.values(), ids=BAD_CONV_ARGS.keys())
def test_conv2d_rejects_bad_input(case):
    x_shape, w_shape, kwargs, message = case
    with pytest.raises(ValueError, match=message) as info:
        conv2d_forward(np.zeros(x_shape), np.zeros(w_shape), None, **kwargs)
    if "stride" not in kwargs or kwargs["stride"] != 0:
        assert isinstance(info.value, ShapeError)


def test_conv2d_rejects_wrong_bias_and_mixed_dtype():
    x, w = np.zeros((1, 2, 3, 3)), np.zeros((4, 2, 3, 3))
    with pytest.raises(
        ShapeError, match="conv2d: b must have shape \\(4,\\), got \\(3,\\)"
    ):
        conv2d_forward(x, w, np.zeros(3))
    with pytest.raises(
        ValueError, match="conv2d: w has dtype float32 but x has dtype float64"
    ):
        conv2d_forward(x, w.astype(np.float32), None)


@pytest.mark.gpu
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_cupy_matches_numpy(case, cupy_xp, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = case
    host = make_conv_inputs(rng, x_shape, w_shape, with_bias)
    out, cache = conv2d_forward(*host, stride, pad, groups)
    dout = rng.standard_normal(out.shape)
    device = [None if a is None else to_device(a, cupy_xp) for a in host]
    out_gpu, cache_gpu = conv2d_forward(*device, stride, pad, groups)
    np.testing.assert_allclose(to_numpy(out_gpu), out, rtol=1e-10, atol=1e-12)
    grads_gpu = conv2d_backward(to_device(dout, cupy_xp), cache_gpu)
    for g_gpu, g in zip(grads_gpu, conv2d_backward(dout, cache)):
        if g is None:
            assert g_gpu is None
        else:
            np.testing.assert_allclose(to_numpy(g_gpu), g, rtol=1e-10, atol=1e-12)


# (N, C, H, W), (F, C/groups, K, K), pad, groups: stride-1 cases of the convolution route.
INPUT_GRAD_CASES = {
    "3x3_pad1": ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1),
    "3x3_pad0_groups2": ((2, 4, 7, 7), (6, 2, 3, 3), 0, 2),
    "5x5_pad2_groups2": ((3, 4, 8, 6), (4, 2, 5, 5), 2, 2),
    "1x1": ((2, 3, 4, 4), (5, 3, 1, 1), 0, 1),
}


@pytest.mark.parametrize("case", INPUT_GRAD_CASES.values(), ids=INPUT_GRAD_CASES.keys())
def test_conv2d_input_grad_routes_agree(case, rng):
    """dx as a flipped-kernel convolution equals dx by the transposed GEMM + col2im."""
    x_shape, w_shape, pad, groups = case
    x, w, _ = make_conv_inputs(rng, x_shape, w_shape, with_bias=False)
    out, _ = conv2d_forward(x, w, None, stride=1, pad=pad, groups=groups)
    dout = rng.standard_normal(out.shape)
    F, C_per_group, K, _ = w_shape
    dout_mat = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(
        groups, F // groups, -1)
    w_mat = w.reshape(groups, F // groups, C_per_group * K * K)
    by_col2im = conv2d_input_grad_by_col2im(dout_mat, w_mat, x_shape, K, K, 1, pad,
                                            *out.shape[2:])
    by_convolution = conv2d_input_grad_by_convolution(dout, w, pad, groups)
    assert by_convolution.shape == x_shape
    np.testing.assert_allclose(by_convolution, by_col2im, rtol=1e-12, atol=1e-12)
