"""Finite-difference gradient checks (float64, NumPy arrays).

Two checks, both with centred differences (error O(h^2)):

* :func:`numerical_gradient` perturbs one input entry at a time, for ops on tiny
  shapes: it differentiates the scalar ``L = sum(f(x) * dout)``, whose gradient is
  exactly what an op's backward returns for upstream gradient ``dout``.
* :func:`directional_check` perturbs all parameters of a model at once along one
  random unit direction u and compares ``(L(p + h u) - L(p - h u)) / 2h`` with the
  analytic ``sum(g * u)``: one pair of forward passes, however large the model.

Use float64 NumPy arrays: in float32 the rounding error of L swamps the difference
(move CuPy arrays to the host with ``lars_ref.backend.to_numpy`` first).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


def numerical_gradient(f: Callable, x: np.ndarray, dout: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """Centred-difference gradient of ``L(x) = sum(f(x) * dout)`` with respect to x.

    Parameters
    ----------
    f : callable, array of x's shape -> array of dout's shape
    x : float64 array, any shape. Not modified (a copy is perturbed).
    dout : float64 array, shape of f(x); the upstream gradient. Use a random one:
        an all-ones dout hides errors that cancel in a plain sum.
    h : step.

    Returns
    -------
    grad : array, shape of x; ``grad[i] = (L(x + h e_i) - L(x - h e_i)) / (2 h)``.
    """
    x_work = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x_work)
    for index in np.ndindex(x_work.shape):
        original = x_work[index]
        x_work[index] = original + h
        loss_plus = np.sum(np.asarray(f(x_work)) * dout)
        x_work[index] = original - h
        loss_minus = np.sum(np.asarray(f(x_work)) * dout)
        x_work[index] = original
        grad[index] = (loss_plus - loss_minus) / (2 * h)
    return grad


def numerical_gradients(f: Callable, args: list, dout: np.ndarray,
                        h: float = 1e-6) -> list:
    """:func:`numerical_gradient` of ``L = sum(f(*args) * dout)`` for each array arg.

    Entries of ``args`` that are None (e.g. an absent bias) give None, so the result
    lines up with an op's backward return value, e.g.
    ``numerical_gradients(lambda x, w, b: conv2d_forward(x, w, b)[0], [x, w, b],
    dout)``.
    """
    grads = []
    for position, arg in enumerate(args):
        if arg is None:
            grads.append(None)
            continue

        def f_of_one(value, position=position):
            return f(*args[:position], value, *args[position + 1:])

        grads.append(numerical_gradient(f_of_one, arg, dout, h))
    return grads


def relative_error(a, b) -> float:
    """Norm-based relative error ``||a - b|| / max(||a||, ||b||)`` (0 when both are 0).

    Insensitive to single tiny entries, unlike the elementwise
    ``|a - b| / (|a| + |b|)``; pair it with ``numpy.testing.assert_allclose`` to
    check every entry too.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / scale)


def assert_gradients_match(analytic, numerical, names, rtol: float = 1e-6) -> None:
    """Assert an op's backward output matches :func:`numerical_gradients`, entry by entry.

    ``analytic`` and ``numerical`` line up with ``names`` (e.g. ``("dx", "dw", "db")``);
    where the numerical gradient is None (an absent argument) the analytic one must
    be None too. Each pair must have a norm-based :func:`relative_error` below
    ``rtol`` and agree elementwise (``rtol``, ``atol = 1e-8``).
    """
    for name, a, n in zip(names, analytic, numerical):
        if n is None:
            assert a is None, f"{name} should be None: its argument was None"
            continue
        error = relative_error(a, n)
        assert error < rtol, f"{name}: relative error {error:.2e} >= {rtol:.0e}"
        np.testing.assert_allclose(a, n, rtol=rtol, atol=1e-8, err_msg=name)


class DirectionalCheck(NamedTuple):
    """Result of :func:`directional_check`."""
    analytic: float        # sum over params of sum(g * u)
    numerical: float       # (L(p + h u) - L(p - h u)) / (2 h)
    relative_error: float  # |analytic - numerical| / max(|analytic|, |numerical|)


def directional_check(loss_fn: Callable[[], float], params: dict, grads: dict,
                      rng: np.random.Generator, h: float = 1e-6) -> DirectionalCheck:
    """Compare the analytic and numerical derivative of a loss along a random direction.

    Parameters
    ----------
    loss_fn : callable with no arguments returning the scalar loss L computed from
        the *current* contents of the arrays in ``params`` (e.g. a closure running a
        model's forward pass and loss).
    params : dict name -> float64 array, the parameters (e.g. a model's own arrays).
        They are perturbed in place during the check and restored exactly (from
        saved copies) before returning.
    grads : dict name -> array of the same shape, dL/dparam at the current params.
    rng : numpy Generator drawing the direction u (unit norm over all params jointly).
    h : step.

    Returns
    -------
    DirectionalCheck(analytic, numerical, relative_error)
    """
    names = list(params)
    directions = {name: rng.standard_normal(np.shape(params[name])) for name in names}
    total_norm = np.sqrt(sum(np.sum(u * u) for u in directions.values()))
    directions = {name: u / total_norm for name, u in directions.items()}
    saved = {name: np.array(params[name], copy=True) for name in names}

    def loss_at(step: float) -> float:
        for name in names:
            params[name][...] = saved[name] + step * directions[name]
        return float(loss_fn())

    try:
        numerical = (loss_at(h) - loss_at(-h)) / (2 * h)
    finally:
        for name in names:
            params[name][...] = saved[name]
    analytic = float(sum(np.sum(np.asarray(grads[name]) * directions[name])
                         for name in names))
    scale = max(abs(analytic), abs(numerical))
    error = 0.0 if scale == 0.0 else abs(analytic - numerical) / scale
    return DirectionalCheck(analytic, numerical, error)
