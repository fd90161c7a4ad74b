"""im2col / col2im: turn a convolution into one matrix product, and back.

A convolution with kernel (HH, WW) takes, for every output pixel, the C*HH*WW input
values under the kernel ("a patch") and dots them with each filter. ``im2col`` lays
all patches out as the columns of a matrix, so that the whole convolution is one
GEMM ``w_mat @ cols``; ``col2im`` is its transpose (adjoint): it adds every column
back onto the input positions it was read from, which is exactly the backward pass
for x.

Layout. ``cols`` has shape (N, C*HH*WW, Ho*Wo): per image n, column p holds the
patch of output pixel p, and row (c, i, j) holds input channel c at kernel offset
(i, j). Keeping N outermost makes ``w_mat @ cols`` a batched matmul whose result is
already (N, F, Ho*Wo), i.e. NCHW, so no transpose of the output is needed, and the
innermost axis (Wo) is read from x with unit stride when stride == 1.

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
    """Output length of a window of ``window`` sliding with ``stride`` over a padded axis.

    ``out = (in_size + 2*pad - window) / stride + 1``. Raises :class:`ShapeError` when
    the window is larger than the padded input, or when the division is not exact
    (Caffe would silently floor for conv and ceil for pooling; this project asks the
    model to pick sizes that fit exactly, so no input pixel is silently ignored).
    """
    padded = in_size + 2 * pad
    if window > padded:
        raise ShapeError(f"{op}: window {window} is larger than the padded input "
                         f"{axis_name} = {in_size} + 2*{pad} = {padded}")
    if (padded - window) % stride != 0:
        raise ShapeError(f"{op}: ({axis_name} + 2*pad - window) / stride = "
                         f"({in_size} + 2*{pad} - {window}) / {stride} is not an integer; "
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
    cols : array, shape (N, C*HH*WW, Ho*Wo), dtype of x
        ``cols[n, (c*HH + i)*WW + j, ho*Wo + wo] = x_pad[n, c, ho*stride + i, wo*stride + j]``.
        A view of x (no copy) for a 1x1 kernel with stride 1 and no padding.
    """
    xp = get_xp(x)
    x_pad = pad_images(x, pad)
    N, C = x.shape[:2]
    sN, sC, sH, sW = x_pad.strides
    # A 6-D view (N, C, HH, WW, Ho, Wo) reading x_pad[n, c, ho*stride + i, wo*stride + j]:
    # kernel offsets move by one pixel, output positions by `stride` pixels.
    patches = xp.lib.stride_tricks.as_strided(
        x_pad, shape=(N, C, HH, WW, Ho, Wo),
        strides=(sN, sC, sH, sW, sH * stride, sW * stride))
    return patches.reshape(N, C * HH * WW, Ho * Wo)  # the one copy of the gather


def col2im(cols, x_shape: tuple, HH: int, WW: int, stride: int, pad: int,
           Ho: int, Wo: int):
    """Adjoint of :func:`im2col`: add every column entry back where it was read from.

    Parameters
    ----------
    cols : array, shape (N, C*HH*WW, Ho*Wo)
        E.g. dL/dcols in the convolution backward pass.
    x_shape : (N, C, H, W), the shape of the image that ``im2col`` read.
    HH, WW, stride, pad, Ho, Wo : as in :func:`im2col`.

    Returns
    -------
    dx : array, shape (N, C, H, W), dtype of cols
        ``dx[n, c, h, w] = sum of cols entries that im2col copied from x[n, c, h, w]``.
    """
    N, C, H, W = x_shape
    xp = get_xp(cols)
    if HH == WW == 1 and stride == 1 and pad == 0:
        return cols.reshape(x_shape)  # each pixel was read exactly once: a reshape
    cols = cols.reshape(N, C, HH, WW, Ho, Wo)
    dx_pad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    # One vectorised add per kernel offset (i, j); overlapping windows accumulate.
    for i in range(HH):
        rows = window_slice(i, stride, Ho)
        for j in range(WW):
            dx_pad[:, :, rows, window_slice(j, stride, Wo)] += cols[:, :, i, j]
    if pad == 0:
        return dx_pad
    return xp.ascontiguousarray(dx_pad[:, :, pad:pad + H, pad:pad + W])
