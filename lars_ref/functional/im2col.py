"""im2col / col2im: turn a convolution into one matrix product, and back.

A convolution with kernel (HH, WW) takes, for every output pixel, the C*HH*WW input
values under the kernel ("a patch") and dots them with each filter. ``im2col`` lays
all patches out as the columns of a matrix, so that the whole convolution is one
GEMM ``w_mat @ cols``; ``col2im`` is its transpose (adjoint): it adds every column
back onto the input positions it was read from, which is exactly the backward pass
for x.

Layout. ``cols`` has shape (C*HH*WW, N*Ho*Wo): row (c, i, j) holds input channel c
at kernel offset (i, j), column (n, ho, wo) the patch of one output pixel. The whole
batch is then one large GEMM ``w_mat @ cols`` per group (large GEMMs run far faster
than one small GEMM per image when channels are few, as in ResNet-20), channels are
outermost so groups are a free reshape, and the innermost axis (Wo) is read from x
with unit stride when stride == 1. The price is one transpose of the output,
(F, N, Ho, Wo) -> (N, F, Ho, Wo), and one of dout in the backward pass.

Both functions are portable between NumPy and CuPy: the gather is a strided view
(``xp.lib.stride_tricks.as_strided``) copied once by ``reshape``; the scatter is a
loop over the HH*WW kernel offsets, each one vectorised strided-slice add (no
``add.at``, which is slow).

Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp
from lars_ref.functional.errors import ShapeError


def output_size(op: str, in_size: int, window: int, stride: int, pad: int,
                axis_name: str) -> int:
    """Window positions on one axis: ``floor((in + 2*pad - window) / stride) + 1``.

    This is the PyTorch and Caffe convolution rule; it lets the standard ResNet
    downsampling layers work (3x3, stride 2, pad 1 on 32 pixels gives 16).

    Raises :class:`ShapeError` when the window is larger than the padded input, and
    when flooring would silently ignore *real* input pixels at the far edge: the
    ``(in + 2*pad - window) % stride`` trailing rows that no window reaches must all be
    padding. (A window smaller than the stride, e.g. 1x1 with stride 2, skips pixels
    everywhere by design, so its trailing pixels may be skipped too.)
    """
    padded = in_size + 2 * pad
    if window > padded:
        raise ShapeError(f"{op}: window {window} is larger than the padded input "
                         f"{axis_name} = {in_size} + 2*{pad} = {padded}")
    unreached = (padded - window) % stride  # trailing rows of the padded input
    if unreached > pad and window >= stride:
        raise ShapeError(f"{op}: ({axis_name} + 2*pad - window) / stride = "
                         f"({in_size} + 2*{pad} - {window}) / {stride} leaves the last "
                         f"{unreached - pad} input row(s) of {axis_name} unread; "
                         "change the padding, stride or input size")
    return (padded - window) // stride + 1


def window_slice(offset: int, stride: int, out_size: int) -> slice:
    """The input positions that kernel offset ``offset`` touches along one axis.

    Output position o reads input ``o*stride + offset``, for o = 0 .. out_size-1.
    """
    return slice(offset, offset + stride * (out_size - 1) + 1, stride)


def pad_images(x, pad: int):
    """Zero-pad the two spatial axes of x: (N, C, H, W) -> (N, C, H+2*pad, W+2*pad).

    Returns x itself (no copy) when ``pad == 0``.
    """
    if pad == 0:
        return x
    xp = get_xp(x)
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def im2col(x, HH: int, WW: int, stride: int, pad: int, Ho: int, Wo: int):
    """Gather every (HH, WW) patch of the padded input into the columns of a matrix.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    HH, WW : kernel height and width.
    stride, pad : convolution stride and zero padding.
    Ho, Wo : output height and width (from :func:`output_size`).

    Returns
    -------
    cols : array, shape (C*HH*WW, N*Ho*Wo), dtype of x, with
        ``cols[(c*HH + i)*WW + j, (n*Ho + ho)*Wo + wo]
        = x_pad[n, c, ho*stride + i, wo*stride + j]``.
    """
    xp = get_xp(x)
    x_pad = pad_images(x, pad)
    N, C = x.shape[:2]
    sN, sC, sH, sW = x_pad.strides
    # A 6-D view (C, HH, WW, N, Ho, Wo) of x_pad[n, c, ho*stride + i, wo*stride + j]:
    # kernel offsets move by one pixel, output positions by `stride` pixels.
    patches = xp.lib.stride_tricks.as_strided(
        x_pad, shape=(C, HH, WW, N, Ho, Wo),
        strides=(sC, sH, sW, sN, sH * stride, sW * stride))
    return patches.reshape(C * HH * WW, N * Ho * Wo)  # the one copy of the gather


def col2im(cols, x_shape: tuple, HH: int, WW: int, stride: int, pad: int,
           Ho: int, Wo: int):
    """Adjoint of :func:`im2col`: add every column entry back where it was read from.

    Parameters
    ----------
    cols : array, shape (C*HH*WW, N*Ho*Wo)
        E.g. dL/dcols in the convolution backward pass.
    x_shape : (N, C, H, W), the shape of the image that ``im2col`` read.
    HH, WW, stride, pad, Ho, Wo : as in :func:`im2col`.

    Returns
    -------
    dx : array, shape (N, C, H, W), C-contiguous, dtype of cols:
        ``dx[n, c, h, w]`` = the sum of the cols entries copied from x[n, c, h, w].
    """
    N, C, H, W = x_shape
    xp = get_xp(cols)
    cols = cols.reshape(C, HH, WW, N, Ho, Wo)
    # Accumulate in cols' own (C, N, H, W) order, so every add reads contiguous blocks.
    dx_pad = xp.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    # One vectorised add per kernel offset (i, j); overlapping windows accumulate.
    for i in range(HH):
        rows = window_slice(i, stride, Ho)
        for j in range(WW):
            dx_pad[:, :, rows, window_slice(j, stride, Wo)] += cols[:, i, j]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W].transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(dx)  # crop the padding, back to NCHW
