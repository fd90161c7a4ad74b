"""Elementwise activations: ReLU, and inverted dropout."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lars_ref.backend import get_xp, to_device
from lars_ref.functional.conv_rows import for_each_row_share


class ReluCache(NamedTuple):
    """What :func:`relu_backward` reads."""
    out: object  # the output max(x, 0): positive exactly where x > 0. The next
    #              layer keeps it anyway (a conv's input), so caching it costs no memory


def relu_forward(x):
    """Rectified linear unit, ``out = max(x, 0)``, any shape.

    Returns
    -------
    out : array, shape and dtype of x
    cache : ReluCache
    """
    xp = get_xp(x)
    if x.ndim < 2:
        out = xp.maximum(x, 0)
    else:  # by shares of the rows, one per worker thread (set_conv_workers)
        out = xp.empty_like(x)
        for_each_row_share(xp, lambda r: xp.maximum(x[r], 0, out=out[r]), x)
    return out, ReluCache(out)


def relu_backward(dout, cache: ReluCache):
    """``dx = dout * [x > 0]`` (the subgradient 0 is taken at x == 0), where
    ``x > 0`` is read as ``out > 0``."""
    xp, out = get_xp(dout), cache.out
    if dout.ndim < 2:
        return dout * (out > 0)
    dx = xp.empty_like(dout)
    for_each_row_share(xp, lambda r: xp.multiply(dout[r], out[r] > 0, out=dx[r]), dout)
    return dx


class DropoutCache(NamedTuple):
    """What :func:`dropout_backward` reads."""
    mask: object  # shape of x, dtype of x: 0 where dropped, 1/(1-p) where kept


def dropout_forward(x, p: float, rng: np.random.Generator):
    """Inverted dropout (training mode): drop each entry with probability p.

    Kept entries are scaled by 1/(1-p) so that E[out] = x, and evaluation needs no
    rescaling (call nothing at evaluation time). The mask is drawn on the host from
    the NumPy Generator ``rng`` and then moved to x's backend, so NumPy and CuPy runs
    with the same seed drop the same units.

    Parameters
    ----------
    x : array, any shape
    p : drop probability, 0 <= p < 1 (AlexNet: 0.5 after fc6 and fc7).
    rng : numpy.random.Generator

    Returns
    -------
    out : array, shape and dtype of x
    cache : DropoutCache
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: drop probability p must be in [0, 1), got {p!r}")
    keep = rng.random(x.shape) >= p                       # host bool mask
    mask = keep.astype(x.dtype) * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    mask = to_device(mask, get_xp(x))
    return x * mask, DropoutCache(mask)


def dropout_backward(dout, cache: DropoutCache):
    """``dx = dout * mask``: dropped units get no gradient, kept ones are rescaled."""
    return dout * cache.mask
