"""The adapter protocol, and replaying a case through a foreign optimizer.

An **adapter** performs optimizer steps on named NumPy float64 arrays. Either

1. an object with two methods (and optionally a ``name`` attribute)::

       adapter.reset(case, init_params)      # start a fresh optimizer for this case
       adapter.step(grads, t, gamma_t) -> {name: new weights}

2. or a factory function ``make(case, init_params) -> step``, where
   ``step(grads, t, gamma_t) -> {name: new weights}`` keeps its state in a closure.

Arguments: ``case`` is a :class:`lars_ref.crosscheck.cases.Case` (read
``case.momentum``, ``case.weight_decay``, ``case.eta``, ``case.schedule`` (a
callable ``t -> gamma_t``), ``case.num_steps``, ``case.tensor_names``);
``init_params`` is ``{name: float64 array}`` (the adapter's own copies); ``grads``
is ``{name: float64 array}`` of step ``t`` (0-based; fresh copies every step, the
adapter may modify them); ``gamma_t`` is ``case.gamma(t)``, the global LR an
optimizer with a per-step LR (PyTorch style) should use for this step.
``step`` returns the weights *after* the step, as a dict of array-likes with the
same names and shapes (NumPy, torch CPU tensors, JAX arrays: anything
``numpy.asarray`` accepts). The checker copies them at once.

A broken adapter never produces a traceback in the report: :func:`replay` raises
:class:`AdapterError` naming the case, step and tensor.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lars_ref.crosscheck.cases import Case


class AdapterError(ValueError):
    """A foreign optimizer adapter failed or returned bad weights (message names where)."""


class FactoryAdapter:
    """Adapter form 1 around form 2: a factory ``make(case, init_params) -> step``."""

    def __init__(self, make, name: str | None = None):
        self.make = make
        self.name = name or adapter_name(make)
        self._step = None

    def reset(self, case: Case, init_params: dict) -> None:
        self._step = self.make(case, init_params)
        if not callable(self._step):
            raise TypeError(f"the factory returned {type(self._step).__name__}, not a step "
                            "function step(grads, t, gamma_t) -> params")

    def step(self, grads: dict, t: int, gamma_t: float):
        return self._step(grads, t, gamma_t)


def as_adapter(adapter, name: str | None = None):
    """Return ``adapter`` if it has ``reset`` and ``step``; wrap a factory function."""
    if hasattr(adapter, "reset") and hasattr(adapter, "step"):
        return adapter
    if callable(adapter):
        return FactoryAdapter(adapter, name)
    raise AdapterError(f"{adapter!r} is not an adapter: give an object with reset(case, "
                       "init_params) and step(grads, t, gamma_t), or a factory function "
                       "make(case, init_params) -> step")


def adapter_name(adapter) -> str:
    """A readable name: ``adapter.name``, else a function's own name, else the class name."""
    return str(getattr(adapter, "name", None) or getattr(adapter, "__name__", None)
               or type(adapter).__name__)


def _where(case: Case, t: int | None) -> str:
    return f"case {case.name!r}" + ("" if t is None else f", step {t}")


def check_returned_weights(returned, case: Case, t: int) -> dict:
    """Validate what ``step`` returned at step ``t``; return float64 host copies.

    Raises
    ------
    AdapterError
        Not a mapping, missing or extra tensor names, an unconvertible value, a
        wrong shape, or NaN/Inf; the message names the case, step and tensor.
    """
    where = _where(case, t)
    if not isinstance(returned, Mapping):
        raise AdapterError(f"{where}: step returned {type(returned).__name__}, expected a dict "
                           f"{{name: array}} with the names {list(case.tensor_names)}")
    missing = [n for n in case.tensor_names if n not in returned]
    extra = sorted(str(n) for n in returned if n not in case.tensor_names)
    if missing or extra:
        raise AdapterError(f"{where}: returned tensor names do not match the case: "
                           f"missing {missing}, unexpected {extra}")
    weights = {}
    for spec in case.tensors:
        weights[spec.name] = _checked_tensor(returned[spec.name], spec, where)
    return weights


def _checked_tensor(value, spec, where: str) -> np.ndarray:
    """One returned tensor as a float64 copy, or AdapterError naming it."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise AdapterError(f"{where}, tensor {spec.name!r}: cannot convert the returned "
                           f"{type(value).__name__} to a float64 array ({err})") from None
    if array.shape != tuple(spec.shape):
        raise AdapterError(f"{where}, tensor {spec.name!r}: returned shape {array.shape}, "
                           f"expected {tuple(spec.shape)}")
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AdapterError(f"{where}, tensor {spec.name!r}: {int(bad.sum())} of {array.size} "
                           f"returned weights are NaN or Inf (first at index {first})")
    return array


def replay(adapter, case: Case) -> tuple:
    """Run ``case`` through ``adapter``: the weights before and after every step.

    Parameters
    ----------
    adapter : adapter (see the module docstring)
    case : Case

    Returns
    -------
    tuple of dict
        ``num_steps + 1`` dicts ``{name: float64 array of the tensor's shape}``:
        ``w_0``, then the adapter's weights after each step.

    Raises
    ------
    AdapterError
        When the adapter raises or returns bad weights (never another exception).
    """
    adapter = as_adapter(adapter)
    initial = case.initial_weights()
    try:
        adapter.reset(case, {name: w.copy() for name, w in initial.items()})
    except Exception as err:  # the foreign code's own error, reported without traceback
        raise AdapterError(f"{_where(case, None)}: reset raised "
                           f"{type(err).__name__}: {err}") from None
    weights = [initial]
    for t, grads in enumerate(case.gradients()):
        try:
            returned = adapter.step(grads, t, case.gamma(t))
        except Exception as err:
            raise AdapterError(f"{_where(case, t)}: step raised "
                               f"{type(err).__name__}: {err}") from None
        weights.append(check_returned_weights(returned, case, t))
    return tuple(weights)
