"""2-D convolution (cross-correlation, as in every deep-learning library), NCHW.

Forward, for output channel f in group g = f // (F/groups):

    out[n, f, ho, wo] = b[f] + sum_{c, i, j} w[f, c, i, j]
                             * x_pad[n, g*C/groups + c, ho*stride + i, wo*stride + j]

Vectorised as one matrix product per group, ``out = w_mat @ cols`` with
``cols = im2col(x)`` of shape (C*HH*WW, N*Ho*Wo). The backward pass is the transpose:

    dw = dout_mat @ cols^T                      (a correlation of x with dout)
    dcols = w_mat^T @ dout_mat ;  dx = col2im(dcols)
    db = sum over (n, ho, wo) of dout

For stride 1 and a square kernel, dx is also a *convolution*: the "full"
correlation of dout with the kernels flipped in space and with the roles of input
and output channels swapped,

    dx[n, c] = sum_f  dout_pad[n, f]  (*)  flip(w[f, c]),   dout padded by HH-1-pad,

which saves col2im's HH*WW strided passes over dx. Both routes are kept and
tested against each other (``tests/test_functional_conv.py``).

where ``dout_mat`` is dout laid out as (F, N*Ho*Wo).

Paper: AlexNet and AlexNet-BN (Krizhevsky et al. 2012; You et al. 2017, Section 5)
use grouped convolutions (groups=2 in conv2, conv4, conv5); ResNet uses 3x3 and 1x1.

Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

from lars_ref.backend import get_xp
from lars_ref.functional.errors import (ShapeError, require_ndim, require_positive_int,
                                        require_same_dtype, require_shape)
from lars_ref.functional.im2col import col2im, im2col, output_size, pad_images


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` reads."""
    cols: object         # (groups, C/groups*HH*WW, N*Ho*Wo) patches: dw = dout @ cols^T
    w: object            # (F, C/groups, HH, WW) weights: dcols = w^T @ dout
    x_shape: tuple       # (N, C, H, W), where col2im scatters dx
    stride: int
    pad: int
    has_bias: bool       # b was given, so db is returned (None otherwise)


def _check_conv_args(x, w, b, stride, pad, groups,
                     channels_last: bool = False) -> tuple[int, int]:
    """Validate the arguments of conv2d; return the output size (Ho, Wo).

    x is (N, C, H, W), or (N, H, W, C) when ``channels_last``; w is always the
    paper's (F, C/groups, HH, WW).
    """
    op = "conv2d"
    require_ndim(op, "x", x, (4,), "(N, H, W, C)" if channels_last else "(N, C, H, W)")
    require_ndim(op, "w", w, (4,), "(F, C/groups, HH, WW)")
    require_positive_int(op, "stride", stride)
    require_positive_int(op, "pad", pad, minimum=0)
    require_positive_int(op, "groups", groups)
    N, C, H, W = (x.shape[0], x.shape[3], *x.shape[1:3]) if channels_last else x.shape
    F, C_per_group, HH, WW = w.shape
    shapes = f"x: {tuple(x.shape)}, w: {tuple(w.shape)}, groups={groups}"
    if C % groups != 0 or F % groups != 0:
        raise ShapeError(f"{op}: channels must be divisible by groups; x has C={C}, "
                         f"w has F={F} filters; {shapes}")
    if C_per_group * groups != C:
        raise ShapeError(f"{op}: x has {C} channels but w expects w.shape[1] * groups "
                         f"= {C_per_group * groups}; {shapes}")
    if b is not None:
        require_shape(op, "b", b, (F,))
    require_same_dtype(op, x, w=w, b=b)
    Ho = output_size(op, H, HH, stride, pad, "H")
    Wo = output_size(op, W, WW, stride, pad, "W")
    return Ho, Wo


def conv2d_forward(x, w, b, stride: int = 1, pad: int = 0, groups: int = 1):
    """Convolve a batch of images with a bank of filters (im2col + a GEMM per group).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    w : array, shape (F, C/groups, HH, WW)
    b : array, shape (F,), or None for no bias
    stride : int >= 1
    pad : int >= 0, zero padding on each side of H and W
    groups : int >= 1; input and output channels are split into ``groups`` blocks
        and block g of the output sees only block g of the input (AlexNet's groups).

    Returns
    -------
    out : array, shape (N, F, Ho, Wo), dtype of x, with
        Ho = floor((H + 2*pad - HH) / stride) + 1 and Wo likewise (see
        :func:`lars_ref.functional.im2col.output_size` for when flooring is refused).
    cache : Conv2dCache

    Raises
    ------
    ShapeError
        Wrong rank, channel mismatch, channels not divisible by groups, kernel larger
        than the padded input, or a size whose floor would ignore real input pixels.

    Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
    """
    Ho, Wo = _check_conv_args(x, w, b, stride, pad, groups)
    xp = get_xp(x, w)
    N, C = x.shape[:2]
    F, C_per_group, HH, WW = w.shape
    # (C*HH*WW, N*Ho*Wo) -> (groups, C/groups*HH*WW, N*Ho*Wo): channels are outermost
    # in the patch rows, so the split by group is a free reshape.
    cols = im2col(x, HH, WW, stride, pad, Ho, Wo).reshape(
        groups, C_per_group * HH * WW, N * Ho * Wo)
    w_mat = w.reshape(groups, F // groups, C_per_group * HH * WW)
    out_mat = xp.matmul(w_mat, cols)  # (groups, F/groups, N*Ho*Wo): one GEMM per group
    out = xp.ascontiguousarray(out_mat.reshape(F, N, Ho, Wo).transpose(1, 0, 2, 3))
    if b is not None:
        out += b.reshape(1, F, 1, 1)  # out is a fresh array: in place is safe
    return out, Conv2dCache(cols, w, tuple(x.shape), stride, pad, b is not None)


def conv2d_backward(dout, cache: Conv2dCache, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward` given dL/dout.

    Parameters
    ----------
    dout : array, shape (N, F, Ho, Wo)
    cache : Conv2dCache from the forward pass.
    input_grad : False skips dx (returned as None): a model's first layer, whose
        input (the images) needs no gradient.

    Returns
    -------
    dx : array, shape (N, C, H, W), or None
    dw : array, shape (F, C/groups, HH, WW)
    db : array, shape (F,), or None when the forward had no bias.

    Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
    """
    cols, w, x_shape, stride, pad, has_bias = cache
    xp = get_xp(dout)
    groups, patch_size, num_columns = cols.shape
    F, _, HH, WW = w.shape
    Ho, Wo = dout.shape[2:]
    # (N, F, Ho, Wo) -> (F, N*Ho*Wo), the column order of cols, split by group.
    dout_mat = xp.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(
        groups, F // groups, num_columns)
    w_mat = w.reshape(groups, F // groups, patch_size)
    # dw[g] = dout[g] @ cols[g]^T: one GEMM per group, summing over all N*Ho*Wo pixels.
    dw = xp.matmul(dout_mat, cols.swapaxes(-1, -2)).reshape(w.shape)
    if not input_grad:
        dx = None
    elif stride == 1 and HH == WW and pad <= HH - 1:  # the faster route (docstring)
        dx = conv2d_input_grad_by_convolution(dout, w, pad, groups)
    else:
        dx = conv2d_input_grad_by_col2im(dout_mat, w_mat, x_shape, HH, WW, stride, pad,
                                         Ho, Wo)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


def conv2d_input_grad_by_col2im(dout_mat, w_mat, x_shape, HH, WW, stride, pad, Ho, Wo):
    """dx by the transpose of the forward GEMM, then col2im (any stride, any kernel).

    dout_mat : (groups, F/groups, N*Ho*Wo); w_mat : (groups, F/groups, C/groups*HH*WW).
    Returns dx : (N, C, H, W).
    """
    xp = get_xp(dout_mat)
    num_columns = dout_mat.shape[2]
    # dcols[g] = w[g]^T @ dout[g], (groups, C/groups*HH*WW, N*Ho*Wo); col2im adds the
    # columns back onto the pixels they were copied from.
    dcols = xp.matmul(w_mat.swapaxes(-1, -2), dout_mat)
    return col2im(dcols.reshape(-1, num_columns), x_shape, HH, WW, stride, pad, Ho, Wo)


def conv2d_input_grad_by_convolution(dout, w, pad: int, groups: int):
    """dx for stride 1 and a square kernel, as one convolution of dout (no col2im).

    ``dx = conv2d(dout, w_flipped, pad=HH-1-pad, groups)`` where ``w_flipped[g*C/groups
    + c, f] = w[g*F/groups + f, c, ::-1, ::-1]``: within each group the input and
    output channels swap roles, and the kernel is rotated by 180 degrees.

    dout : (N, F, Ho, Wo); w : (F, C/groups, HH, HH); 0 <= pad <= HH - 1.
    Returns dx : (N, C, H, W) with H = Ho + 2*pad - HH + 1.
    """
    xp = get_xp(dout, w)
    F, C_per_group, HH, WW = w.shape
    swapped = w.reshape(groups, F // groups, C_per_group, HH, WW).swapaxes(1, 2)
    w_flipped = xp.ascontiguousarray(
        swapped.reshape(groups * C_per_group, F // groups, HH, WW)[:, :, ::-1, ::-1])
    dx, _ = conv2d_forward(dout, w_flipped, None, stride=1, pad=HH - 1 - pad,
                           groups=groups)
    return dx


def _patches(out_shape, w_shape, stride: int, groups: int):
    """Yield ``(out_index, patch)`` for every output entry (n, f, ho, wo) of a conv:
    ``patch`` indexes the padded input values that filter f dots with (the loop
    oracles); filter f sees only the channels of its group."""
    N, F, Ho, Wo = out_shape
    _, C_per_group, HH, WW = w_shape
    for n, f, ho, wo in itertools.product(range(N), range(F), range(Ho), range(Wo)):
        g = f // (F // groups)                    # the group of filter f
        channels = slice(g * C_per_group, (g + 1) * C_per_group)
        top, left = ho * stride, wo * stride
        yield (n, f, ho, wo), (n, channels, slice(top, top + HH), slice(left, left + WW))


def conv2d_forward_naive(x, w, b, stride: int = 1, pad: int = 0, groups: int = 1):
    """Loop version of :func:`conv2d_forward`, the test oracle and the teaching twin.

    Same parameters and shapes; returns only ``out`` (N, F, Ho, Wo). Slow: use tiny
    shapes.

    Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
    """
    Ho, Wo = _check_conv_args(x, w, b, stride, pad, groups)
    xp = get_xp(x, w)
    x_pad = pad_images(x, pad)
    out = xp.zeros((x.shape[0], w.shape[0], Ho, Wo), dtype=x.dtype)
    for out_index, patch in _patches(out.shape, w.shape, stride, groups):
        f = out_index[1]
        out[out_index] = xp.sum(x_pad[patch] * w[f])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv2d_backward_naive(dout, x, w, stride: int = 1, pad: int = 0, groups: int = 1,
                          has_bias: bool = True):
    """Loop version of :func:`conv2d_backward`, the oracle of every fast backward.

    Each output entry ``out[n, f, ho, wo]`` was a dot product of ``w[f]`` with one
    patch of the padded input, so its gradient ``dout[n, f, ho, wo]`` flows back
    to exactly those two factors (the chain rule for a product):

        dw[f]                   += dout[n, f, ho, wo] * patch
        dx_pad[n, group, patch] += dout[n, f, ho, wo] * w[f]
        db[f]                   += dout[n, f, ho, wo]

    dout : (N, F, Ho, Wo); x, w, stride, pad, groups as in the forward.
    Returns dx (N, C, H, W), dw (F, C/groups, HH, WW), db (F,) or None. Slow: use
    tiny shapes.

    Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
    """
    xp = get_xp(dout, x, w)
    H, W = x.shape[2:]
    x_pad = pad_images(x, pad)
    dx_pad = xp.zeros(x_pad.shape, dtype=dout.dtype)
    dw = xp.zeros(w.shape, dtype=dout.dtype)
    for out_index, patch in _patches(dout.shape, w.shape, stride, groups):
        f = out_index[1]
        dw[f] += dout[out_index] * x_pad[patch]
        dx_pad[patch] += dout[out_index] * w[f]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
