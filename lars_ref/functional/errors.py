"""Errors raised by the functional ops, and the small checks that raise them.

Every message names the op, the offending argument and the shapes involved, so a
wrong model definition is found from the message alone, e.g.
``conv2d: x has 3 channels but w expects w.shape[1] * groups = 4; x: (2, 3, 5, 5),
w: (4, 2, 3, 3), groups=2``.
"""
from __future__ import annotations

import numbers


class ShapeError(ValueError):
    """An op received arrays whose shapes (or hyperparameters) cannot work together."""


def require_ndim(op: str, name: str, a, ndims: tuple[int, ...], layout: str) -> None:
    """Raise :class:`ShapeError` unless ``a.ndim`` is one of ``ndims``.

    ``layout`` is the expected shape in words, e.g. ``"(N, C, H, W)"``.
    """
    if a.ndim not in ndims:
        raise ShapeError(f"{op}: {name} must be {layout}, got shape {tuple(a.shape)} "
                         f"({a.ndim}-D)")


def require_shape(op: str, name: str, a, shape: tuple[int, ...]) -> None:
    """Raise :class:`ShapeError` unless ``a.shape == shape``."""
    if tuple(a.shape) != tuple(shape):
        raise ShapeError(f"{op}: {name} must have shape {tuple(shape)}, "
                         f"got {tuple(a.shape)}")


def require_same_dtype(op: str, x, **others) -> None:
    """Raise ``ValueError`` if a non-None array in ``others`` has another dtype than x.

    Mixed float32/float64 arguments would silently upcast the result, breaking the
    "float32 in, float32 out" contract.
    """
    for name, a in others.items():
        if a is not None and a.dtype != x.dtype:
            raise ValueError(f"{op}: {name} has dtype {a.dtype} but x has dtype "
                             f"{x.dtype}; cast them to one float dtype")


def require_positive_int(op: str, name: str, value, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= ``minimum``."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not is_int or value < minimum:
        raise ValueError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")
