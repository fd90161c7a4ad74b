"""The channels-last row-gather convolution: equal to im2col and to the loops.

Three readings of one convolution (the loop oracle, im2col + GEMM in NCHW, and the
row gather in NHWC) must agree to 1e-12 in float64, forward and backward, over the
shapes of ``tests/test_functional_conv.py`` (strides 1-3, padding, groups, floor
mode) plus ResNet-20's own; the backward also against finite differences.
"""
import numpy as np
import pytest

from lars_ref.backend import to_device, to_numpy
from lars_ref.functional import (conv2d_backward, conv2d_backward_naive, conv2d_forward,
                                 conv2d_forward_naive, conv2d_nhwc_backward,
                                 conv2d_nhwc_forward)
from lars_ref.functional import (batchnorm_backward, batchnorm_forward, conv_rows,
                                 relu_backward, relu_forward)
from lars_ref.gradcheck import assert_gradients_match, numerical_gradients
from tests.test_functional_conv import CONV_CASES, make_conv_inputs

ROW_CASES = {
    **CONV_CASES,
    "11x11_stride4_alexnet_conv1": ((2, 3, 23, 23), (4, 3, 11, 11), 4, 0, 1, True),
    "resnet_stage3_64ch": ((3, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1, False),
    "resnet_stage2_entry": ((2, 16, 16, 16), (32, 16, 3, 3), 2, 1, 1, False),
}


def to_nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def to_nchw(a):
    return a.transpose(0, 3, 1, 2)


def relative(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("case", ROW_CASES.values(), ids=ROW_CASES.keys())
def test_row_gather_equals_im2col_and_loops(case, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = case
    x, w, b = make_conv_inputs(rng, x_shape, w_shape, with_bias)
    out_cols, cache_cols = conv2d_forward(x, w, b, stride, pad, groups)
    out_rows, cache_rows = conv2d_nhwc_forward(to_nhwc(x), w, b, stride, pad, groups)
    out_loops = conv2d_forward_naive(x, w, b, stride, pad, groups)
    assert relative(to_nchw(out_rows), out_cols) < 1e-12
    assert relative(to_nchw(out_rows), out_loops) < 1e-12
    dout = rng.standard_normal(out_cols.shape)
    by_cols = conv2d_backward(dout, cache_cols)
    by_rows = conv2d_nhwc_backward(to_nhwc(dout), cache_rows)
    by_loops = conv2d_backward_naive(dout, x, w, stride, pad, groups, with_bias)
    rows_nchw = (to_nchw(by_rows[0]), *by_rows[1:])
    for name, got, cols, loops in zip(("dx", "dw", "db"), rows_nchw, by_cols, by_loops):
        if cols is None:
            assert got is None and loops is None
            continue
        assert relative(got, cols) < 1e-12, name
        assert relative(got, loops) < 1e-12, name


@pytest.mark.parametrize("case", ["stride2_pad1_odd_nonsquare",
                                  "groups2_pad1_rect_kernel", "resnet_downsample_floor"])
def test_row_gather_gradients_match_finite_differences(case, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = ROW_CASES[case]
    nhwc_shape = to_nhwc(np.empty(x_shape)).shape
    x, w, b = make_conv_inputs(rng, nhwc_shape, w_shape, with_bias)
    out, cache = conv2d_nhwc_forward(x, w, b, stride, pad, groups)
    dout = rng.standard_normal(out.shape)

    def forward(x, w, b):
        return conv2d_nhwc_forward(x, w, b, stride, pad, groups)[0]

    numerical = numerical_gradients(forward, [x, w, b], dout)
    assert_gradients_match(conv2d_nhwc_backward(dout, cache), numerical,
                           ("dx", "dw", "db"))


@pytest.mark.parametrize("size, stride, Wq, rows, padded", [
    (16, 1, 17, 16 * 17, 273),   # 272 grid rows, R = 3: one extra row
    (13, 2, 14, 7 * 7, 50),      # 49 grid rows, R = 2: one extra row
    (16, 2, 18, 8 * 9, 72),      # 72: none
])
def test_rows_a_multiple_of_the_stride_and_the_grid_padded_to_the_residues(
        size, stride, Wq, rows, padded, rng):
    """A buffer row is pad + W columns rounded up to the stride (not to R*stride),
    so one image's grid of Ho * Wq/stride outputs need not split evenly into the R
    residues; the grid then gets the missing rows, and the conv still equals
    im2col, forward and backward (one image, bias, 3x3, pad 1)."""
    Ho = (size + 2 - 3) // stride + 1
    g = conv_rows.row_geometry((size, size), (4, 3, 3, 3), stride, 1, (Ho, Ho), 3)
    assert (g.Wq, g.Ho * g.Wq // stride) == (Wq, rows)
    assert conv_rows.grid_rows(g, 1) == padded
    x, w, b = make_conv_inputs(rng, (1, 3, size, size), (4, 3, 3, 3), True)
    out_cols, cache_cols = conv2d_forward(x, w, b, stride, 1)
    out_rows, cache_rows = conv2d_nhwc_forward(to_nhwc(x), w, b, stride, 1)
    assert relative(to_nchw(out_rows), out_cols) < 1e-12
    dout = rng.standard_normal(out_cols.shape)
    by_rows = conv2d_nhwc_backward(to_nhwc(dout), cache_rows)
    for got, expected in zip((to_nchw(by_rows[0]), *by_rows[1:]),
                             conv2d_backward(dout, cache_cols)):
        assert relative(got, expected) < 1e-12


def test_chunks_of_one_image_give_the_same_result(rng, monkeypatch):
    """Chunking is bookkeeping: one image per chunk changes no value."""
    x, w, _ = make_conv_inputs(rng, (5, 7, 7, 4), (6, 4, 3, 3), False)
    whole, cache = conv2d_nhwc_forward(x, w, None, 1, 1)
    grads = conv2d_nhwc_backward(whole, cache)
    monkeypatch.setattr(conv_rows, "CHUNK_BYTES", 1)
    chunked, cache = conv2d_nhwc_forward(x, w, None, 1, 1)
    assert relative(chunked, whole) < 1e-14   # only the GEMMs' summation order moves
    for a, b in zip(conv2d_nhwc_backward(chunked, cache)[:2], grads[:2]):
        assert relative(a, b) < 1e-14


def test_row_gather_reads_only_its_inputs(rng):
    """Reused buffers: a second call on other data gives that data's answer, and
    the inputs are left unchanged."""
    x1, w, _ = make_conv_inputs(rng, (2, 6, 6, 3), (4, 3, 3, 3), False)
    x2 = rng.standard_normal(x1.shape)
    copies = x1.copy(), w.copy()
    conv2d_nhwc_forward(x1, w, None, 1, 1)
    out2, _ = conv2d_nhwc_forward(x2, w, None, 1, 1)
    expected = conv2d_forward_naive(to_nchw(x2), w, None, 1, 1)
    assert relative(to_nchw(out2), expected) < 1e-12
    np.testing.assert_array_equal(x1, copies[0])
    np.testing.assert_array_equal(w, copies[1])


def test_row_gather_preserves_float32(xp, rng):
    x, w, b = make_conv_inputs(rng, (2, 5, 5, 3), (4, 3, 3, 3), True, dtype=np.float32)
    out, cache = conv2d_nhwc_forward(to_device(x, xp), to_device(w, xp),
                                     to_device(b, xp), 1, 1)
    dx, dw, db = conv2d_nhwc_backward(out, cache)
    assert {out.dtype, dx.dtype, dw.dtype, db.dtype} == {np.dtype(np.float32)}


@pytest.mark.gpu
@pytest.mark.parametrize("case", ROW_CASES.values(), ids=ROW_CASES.keys())
def test_row_gather_cupy_matches_numpy(case, cupy_xp, rng):
    x_shape, w_shape, stride, pad, groups, with_bias = case
    nhwc_shape = to_nhwc(np.empty(x_shape)).shape
    x, w, b = make_conv_inputs(rng, nhwc_shape, w_shape, with_bias)
    out, cache = conv2d_nhwc_forward(x, w, b, stride, pad, groups)
    dout = rng.standard_normal(out.shape)
    grads = conv2d_nhwc_backward(dout, cache)
    on_device = [to_device(a, cupy_xp) if a is not None else None for a in (x, w, b)]
    out_d, cache_d = conv2d_nhwc_forward(*on_device, stride, pad, groups)
    grads_d = conv2d_nhwc_backward(to_device(dout, cupy_xp), cache_d)
    assert relative(to_numpy(out_d), out) < 1e-12
    for a, b in zip(grads_d, grads):
        if b is not None:
            assert relative(to_numpy(a), b) < 1e-12


def test_two_worker_threads_give_the_same_result(rng, monkeypatch):
    """Chunks spread over two threads (each with its own buffers) change no value
    beyond the order of the dw sums."""
    x, w, b = make_conv_inputs(rng, (7, 9, 9, 5), (6, 5, 3, 3), True)
    monkeypatch.setattr(conv_rows, "CHUNK_BYTES", 1)   # one image per chunk
    outs = []
    try:
        for workers in (1, 2):
            conv_rows.set_conv_workers(workers)
            out, cache = conv2d_nhwc_forward(x, w, b, 2, 1)
            dout = np.cos(out)
            outs.append((out, *conv2d_nhwc_backward(dout, cache),
                         *conv2d_nhwc_backward(*conv2d_nhwc_forward(x, w, b, 1, 1))))
    finally:
        conv_rows.set_conv_workers(1)
    for one, two in zip(*outs):
        assert relative(two, one) < 1e-14


def test_chunks_are_evened_out_over_the_workers():
    """3 channels at 32x32 with pad 1: a gathered image is 32 rows x 33 columns x 3
    kernel rows x 3 channels x 4 bytes = 38,016 bytes, so 55 fit in 2 MiB; 128
    images then go in 3 even chunks (43, 43, 42) on one worker; on two, each with 64
    images and a 4 MiB budget (110 fit), in one chunk each."""
    g = conv_rows.row_geometry((32, 32), (16, 3, 3, 3), 1, 1, (32, 32), 3)
    assert g.Ho * g.Wq * g.HH * g.channels * 4 == 38_016
    try:
        conv_rows.set_conv_workers(1)
        assert 2**21 // 38_016 == 55
        assert conv_rows.images_per_chunk(np, g, 4, 128) == 43
        conv_rows.set_conv_workers(2)
        assert 2**22 // 38_016 == 110
        assert conv_rows.images_per_chunk(np, g, 4, 128) == 64
        assert conv_rows.images_per_chunk(np, g, 4, 256) == 64   # 128 each: 2 of 64
    finally:
        conv_rows.set_conv_workers(1)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_and_relu_on_two_worker_threads_give_the_same_result(rng, train):
    """Channels-last BN and ReLU split their rows over the workers: the elementwise
    passes are the same, the statistics add the two shares' sums."""
    x = rng.standard_normal((7 * 9 * 9, 5)) * 3 + 1   # a channels-last (N*H*W, C)
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    results = []
    try:
        for workers in (1, 2):
            conv_rows.set_conv_workers(workers)
            out, cache, mean, var = batchnorm_forward(
                x, gamma, beta, np.zeros(5), np.ones(5), train=train)
            relu_out, relu_cache = relu_forward(out)
            dout = relu_backward(np.cos(relu_out), relu_cache)
            results.append((out, mean, var, relu_out, dout,
                            *batchnorm_backward(dout, cache)))
    finally:
        conv_rows.set_conv_workers(1)
    for one, two in zip(*results):
        assert relative(two, one) < 1e-14


@pytest.mark.parametrize("x_shape, w_shape, pad, groups", [
    ((2, 6, 6, 4), (3, 4, 3, 3), 1, 1),
    ((2, 7, 5, 4), (6, 2, 3, 3), 0, 2),
    ((2, 6, 6, 3), (4, 3, 5, 5), 2, 1),
    ((2, 6, 6, 8), (4, 8, 3, 3), 2, 1),
])
def test_both_input_gradient_routes_agree(x_shape, w_shape, pad, groups, rng):
    """dx by the flipped-kernel forward and by adding back through the views, for
    stride-1 shapes where both apply (the op picks one by the channel count)."""
    x, w, _ = make_conv_inputs(rng, x_shape, w_shape, False)
    out, _ = conv2d_nhwc_forward(x, w, None, 1, pad, groups)
    dout = rng.standard_normal(out.shape)
    g = conv_rows.row_geometry(x_shape[1:3], w_shape, 1, pad, out.shape[1:3],
                               w_shape[1])
    flipped = conv_rows._input_grad_by_flipped_kernel(dout, w, pad, groups)
    views = conv_rows._input_grad_through_views(np, dout, w, g, groups, x.shape)
    assert relative(flipped, views) < 1e-12
