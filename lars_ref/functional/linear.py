"""Fully connected (affine) layer: out = x @ w + b, for features (N, D)."""
from __future__ import annotations

from typing import NamedTuple

from lars_ref.functional.errors import (ShapeError, require_ndim, require_same_dtype,
                                        require_shape)


class LinearCache(NamedTuple):
    """What :func:`linear_backward` reads."""
    x: object        # (N, D) input: dw = x^T @ dout
    w: object        # (D, M) weights: dx = dout @ w^T
    has_bias: bool   # b was given, so db is returned (None otherwise)


def linear_forward(x, w, b):
    """Affine map ``out = x @ w + b``.

    Parameters
    ----------
    x : array, shape (N, D); flatten images with ``x.reshape(N, -1)`` first.
    w : array, shape (D, M)
    b : array, shape (M,), or None for no bias

    Returns
    -------
    out : array, shape (N, M), dtype of x
    cache : LinearCache
    """
    op = "linear"
    require_ndim(op, "x", x, (2,), "(N, D)")
    require_ndim(op, "w", w, (2,), "(D, M)")
    if x.shape[1] != w.shape[0]:
        raise ShapeError(f"{op}: x has D={x.shape[1]} features but w expects "
                         f"w.shape[0]={w.shape[0]}; x: {tuple(x.shape)}, "
                         f"w: {tuple(w.shape)}")
    if b is not None:
        require_shape(op, "b", b, (w.shape[1],))
    require_same_dtype(op, x, w=w, b=b)
    out = x @ w
    if b is not None:
        out += b  # out is a fresh array: in place is safe
    return out, LinearCache(x, w, b is not None)


def linear_backward(dout, cache: LinearCache):
    """Gradients of :func:`linear_forward`.

    Parameters
    ----------
    dout : array, shape (N, M)
    cache : LinearCache

    Returns
    -------
    dx : array, shape (N, D)   = dout @ w^T
    dw : array, shape (D, M)   = x^T @ dout
    db : array, shape (M,)     = sum over N of dout, or None when b was None
    """
    x, w, has_bias = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0) if has_bias else None
    return dx, dw, db
