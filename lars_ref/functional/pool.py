"""Pooling over spatial windows, NCHW: max, average, and global average.

``size`` x ``size`` windows move by ``stride`` with no padding. The output size is
``floor((H - size) / stride) + 1``, but a size that would leave real pixels at the
far edge unread is refused (the rule of
:func:`lars_ref.functional.im2col.output_size`; Caffe would ceil and PyTorch floor
silently). AlexNet's 3x3/2 overlapping pools on 55, 27 and 13 pixels fit exactly.

Each vectorised version loops over the size*size offsets (i, j) inside a window,
every iteration one strided-slice operation on the whole batch: the same portable
NumPy/CuPy scheme as :func:`lars_ref.functional.im2col.col2im`.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

from lars_ref.backend import get_xp
from lars_ref.functional.errors import require_ndim, require_positive_int
from lars_ref.functional.im2col import output_size, window_slice


def _pool_output_size(op: str, x, size, stride) -> tuple[int, int]:
    require_ndim(op, "x", x, (4,), "(N, C, H, W)")
    require_positive_int(op, "size", size)
    require_positive_int(op, "stride", stride)
    H, W = x.shape[2:]
    return (output_size(op, H, size, stride, 0, "H"),
            output_size(op, W, size, stride, 0, "W"))


def _window_entries(x, size, stride, Ho, Wo):
    """Yield (i*size + j, view) for each window offset (i, j), where
    ``view[n, c, ho, wo] = x[n, c, ho*stride + i, wo*stride + j]``."""
    for i in range(size):
        rows = window_slice(i, stride, Ho)
        for j in range(size):
            yield i * size + j, x[:, :, rows, window_slice(j, stride, Wo)]


class MaxPoolCache(NamedTuple):
    """What :func:`max_pool2d_backward` reads."""
    argmax: object   # (N, C, Ho, Wo) int: offset i*size + j of each window's maximum
    x_shape: tuple   # (N, C, H, W), the shape of dx
    size: int
    stride: int


def max_pool2d_forward(x, size: int, stride: int):
    """Max pooling: ``out[n, c, ho, wo]`` = max of x over the window at (ho, wo).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    size : window height and width
    stride : step between windows

    Returns
    -------
    out : array, shape (N, C, Ho, Wo), Ho = floor((H - size) / stride) + 1, dtype of x
    cache : MaxPoolCache. On ties the first maximum in row-major window order wins
        (as ``argmax`` does), and only it receives the gradient.
    """
    Ho, Wo = _pool_output_size("max_pool2d", x, size, stride)
    xp = get_xp(x)
    entries = _window_entries(x, size, stride, Ho, Wo)
    _, first_entry = next(entries)
    out = first_entry.copy()  # a view of x until now: copy, never alias the input
    argmax = xp.zeros(out.shape, dtype=xp.int32)
    for offset, entry in entries:
        is_new_max = entry > out  # strict: an equal later value does not take over
        out = xp.where(is_new_max, entry, out)
        argmax = xp.where(is_new_max, offset, argmax)
    return out, MaxPoolCache(argmax, tuple(x.shape), size, stride)


def max_pool2d_backward(dout, cache: MaxPoolCache):
    """Route each ``dout`` entry to the position of its window's maximum.

    Parameters
    ----------
    dout : array, shape (N, C, Ho, Wo)

    Returns
    -------
    dx : array, shape (N, C, H, W); overlapping windows add up.
    """
    argmax, x_shape, size, stride = cache
    xp = get_xp(dout)
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    Ho, Wo = dout.shape[2:]
    for offset, dx_entry in _window_entries(dx, size, stride, Ho, Wo):
        dx_entry += dout * (argmax == offset)  # writes through the view into dx
    return dx


class AvgPoolCache(NamedTuple):
    """What :func:`avg_pool2d_backward` reads."""
    x_shape: tuple   # (N, C, H, W), the shape of dx
    size: int
    stride: int


def avg_pool2d_forward(x, size: int, stride: int):
    """Average pooling: the mean of x over each size x size window.

    Parameters
    ----------
    x : array, shape (N, C, H, W)

    Returns
    -------
    out : array, shape (N, C, Ho, Wo), Ho = floor((H - size) / stride) + 1, dtype of x
    cache : AvgPoolCache
    """
    Ho, Wo = _pool_output_size("avg_pool2d", x, size, stride)
    xp = get_xp(x)
    out = xp.zeros((x.shape[0], x.shape[1], Ho, Wo), dtype=x.dtype)
    for _, entry in _window_entries(x, size, stride, Ho, Wo):
        out += entry
    out /= size * size
    return out, AvgPoolCache(tuple(x.shape), size, stride)


def avg_pool2d_backward(dout, cache: AvgPoolCache):
    """Spread each ``dout`` entry evenly, 1/size^2 to every pixel of its window.

    Returns
    -------
    dx : array, shape (N, C, H, W)
    """
    x_shape, size, stride = cache
    xp = get_xp(dout)
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    share = dout / (size * size)
    Ho, Wo = dout.shape[2:]
    for _, dx_entry in _window_entries(dx, size, stride, Ho, Wo):
        dx_entry += share
    return dx


class GlobalAvgPoolCache(NamedTuple):
    """What :func:`global_avg_pool_backward` reads."""
    x_shape: tuple   # (N, C, H, W), the shape of dx


def global_avg_pool_forward(x):
    """Mean over the pixels of each channel (ResNet's last pooling).

    x: (N, C, H, W) -> out: (N, C), dtype of x.
    """
    require_ndim("global_avg_pool", "x", x, (4,), "(N, C, H, W)")
    return x.mean(axis=(2, 3)), GlobalAvgPoolCache(tuple(x.shape))


def global_avg_pool_backward(dout, cache: GlobalAvgPoolCache):
    """``dx[n, c, h, w] = dout[n, c] / (H*W)``; dout: (N, C), dx: (N, C, H, W)."""
    N, C, H, W = cache.x_shape
    xp = get_xp(dout)
    dx = xp.empty(cache.x_shape, dtype=dout.dtype)
    dx[...] = (dout / (H * W)).reshape(N, C, 1, 1)
    return dx


def _windows(out_shape, size: int, stride: int):
    """Yield ``(out_index, window)`` for every output entry (n, c, ho, wo) of a pool:
    ``window`` indexes the size x size input pixels it reads (the loop oracles)."""
    N, C, Ho, Wo = out_shape
    for n, c, ho, wo in itertools.product(range(N), range(C), range(Ho), range(Wo)):
        top, left = ho * stride, wo * stride
        yield (n, c, ho, wo), (n, c, slice(top, top + size), slice(left, left + size))


def _pool2d_forward_naive(op: str, x, size: int, stride: int, reduce: str):
    """Loop over every output entry and reduce its window with ``reduce`` (the oracle)."""
    Ho, Wo = _pool_output_size(op, x, size, stride)
    xp = get_xp(x)
    out = xp.zeros((*x.shape[:2], Ho, Wo), dtype=x.dtype)
    for out_index, window in _windows(out.shape, size, stride):
        out[out_index] = getattr(x[window], reduce)()
    return out


def max_pool2d_forward_naive(x, size: int, stride: int):
    """Loop version of :func:`max_pool2d_forward` (the oracle); returns only ``out``."""
    return _pool2d_forward_naive("max_pool2d", x, size, stride, "max")


def avg_pool2d_forward_naive(x, size: int, stride: int):
    """Loop version of :func:`avg_pool2d_forward` (the oracle); returns only ``out``."""
    return _pool2d_forward_naive("avg_pool2d", x, size, stride, "mean")


def max_pool2d_backward_naive(dout, x, size: int, stride: int):
    """Loop version of :func:`max_pool2d_backward` (the oracle): each ``dout`` entry
    goes to the first maximum of its window, in row-major order; overlaps add up.

    dout : (N, C, Ho, Wo); x : (N, C, H, W), the forward's input. Returns dx.
    """
    xp = get_xp(dout, x)
    dx = xp.zeros(x.shape, dtype=dout.dtype)
    for out_index, window in _windows(dout.shape, size, stride):
        i, j = divmod(int(x[window].argmax()), size)
        dx[window][i, j] += dout[out_index]      # dx[window] is a view into dx
    return dx


def avg_pool2d_backward_naive(dout, x_shape: tuple, size: int, stride: int):
    """Loop version of :func:`avg_pool2d_backward` (the oracle): each ``dout`` entry
    is shared equally by the size*size pixels of its window.

    dout : (N, C, Ho, Wo); x_shape : (N, C, H, W). Returns dx.
    """
    xp = get_xp(dout)
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    for out_index, window in _windows(dout.shape, size, stride):
        dx[window] += dout[out_index] / (size * size)
    return dx
