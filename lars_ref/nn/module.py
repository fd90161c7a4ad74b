"""The :class:`Module` base class: named parameters, gradients and buffers.

A module is a thin stateful wrapper around a pure op pair of
:mod:`lars_ref.functional`. It only does bookkeeping:

* ``params``  ``{local_name: array}``, the trained tensors (``"w"``, ``"b"``,
  ``"gamma"``, ``"beta"``). LARS treats every one of them as its own "layer"
  (paper Table 2 lists ``conv1.w`` and ``conv1.b`` separately).
* ``grads``   the same keys and shapes as ``params``. ``backward`` *adds* into them
  (``grads[k] += dk``), so the gradients of several micro-batches sum, as the
  authors' Caffe ``iter_size`` does; :meth:`Module.zero_grad` resets them.
* ``buffers`` non-trained state, here the BatchNorm running statistics.
* ``cache``   whatever the op pair's backward needs, kept from the last forward
  until the backward takes it.

Containers (:mod:`lars_ref.nn.containers`) give every module a dotted name
(``conv1``, ``layer1.0.conv1``) so that parameters are reported as
``conv1.w``, ``layer1.0.conv1.w`` and so on, in a stable order, and so that a
shape error names the layer it happened in.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from lars_ref.backend import get_xp, to_device, to_numpy
from lars_ref.functional.errors import ShapeError


class StateDictError(ValueError):
    """A state dict does not fit the model: a name missing or extra, a shape differs."""


def join_name(prefix: str, name: str) -> str:
    """Dotted name of ``name`` inside ``prefix``: ("layer1", "0") -> "layer1.0"."""
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of every layer and container.

    Subclasses fill ``params`` (and ``buffers``) in ``__init__``, call
    :meth:`_init_grads` once the parameters exist, and implement
    :meth:`forward` and :meth:`backward`. Containers override :meth:`children`.

    Attributes
    ----------
    params : dict[str, array]
        Trained tensors by local name.
    grads : dict[str, array]
        dL/d(param), same keys and shapes; accumulated by ``backward``.
    buffers : dict[str, array]
        Non-trained state (BatchNorm running mean and variance).
    name : str
        Dotted name inside the enclosing model, set by the containers
        (``""`` for the root or a module used on its own).
    cache : object or None
        What the op pair's backward needs, from the last forward; the backward
        takes it (:meth:`_take_cache`), so a second backward needs a new forward.
    """

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.name: str = ""
        self.cache = None

    # ------------------------------------------------------------------ compute
    def forward(self, x, train: bool = True):
        """Compute the output for input ``x``; keep what backward needs."""
        raise NotImplementedError

    def backward(self, dout):
        """Given dL/d(out), add dL/d(param) into ``grads`` and return dL/dx."""
        raise NotImplementedError

    def __call__(self, x, train: bool = True):
        return self.forward(x, train=train)

    def children(self) -> list[tuple[str, "Module"]]:
        """Direct sub-modules as ``(local_name, module)`` pairs, in forward order."""
        return []

    # ------------------------------------------------------------------ naming
    def set_name(self, name: str) -> None:
        """Give this module the dotted name ``name`` and its children ``name.child``."""
        self.name = name
        for child_name, child in self.children():
            child.set_name(join_name(name, child_name))

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Yield ``(dotted_name, module)`` for self and all descendants, depth first."""
        yield prefix, self
        for child_name, child in self.children():
            yield from child.named_modules(join_name(prefix, child_name))

    def named_parameters(self) -> Iterator[tuple[str, object]]:
        """Yield ``(dotted_name, array)`` per parameter: ``conv1.w``, ``conv1.b``..."""
        for prefix, module in self.named_modules():
            for key, value in module.params.items():
                yield join_name(prefix, key), value

    def named_grads(self) -> Iterator[tuple[str, object]]:
        """Yield ``(dotted_name, array)`` per gradient, as :meth:`named_parameters`."""
        for prefix, module in self.named_modules():
            for key, value in module.grads.items():
                yield join_name(prefix, key), value

    def named_buffers(self) -> Iterator[tuple[str, object]]:
        """Yield ``(dotted_name, array)`` per buffer: ``bn2.running_mean``, ..."""
        for prefix, module in self.named_modules():
            for key, value in module.buffers.items():
                yield join_name(prefix, key), value

    # ------------------------------------------------------------------ state
    def _init_grads(self) -> None:
        """Allocate a zero gradient beside each parameter (shape, dtype, device)."""
        self.grads = {key: get_xp(p).zeros_like(p) for key, p in self.params.items()}

    def accumulate_grads(self, **grads) -> None:
        """``self.grads[k] += d`` for each given gradient that is not None.

        Adding (never assigning) is what makes the gradients of several micro-batches
        sum between two ``zero_grad()`` calls (Caffe's ``iter_size``).
        """
        for key, grad in grads.items():
            if grad is not None:
                self.grads[key] += grad

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place (the arrays keep their identity)."""
        for _, module in self.named_modules():
            for grad in module.grads.values():
                grad[...] = 0

    def to(self, xp) -> "Module":
        """Move every parameter, gradient and buffer to the array module ``xp``.

        Names and order are unchanged; caches from an earlier forward are dropped
        (they live on the old device). Returns ``self`` for chaining.
        """
        for _, module in self.named_modules():
            module.params = {k: to_device(v, xp) for k, v in module.params.items()}
            module.grads = {k: to_device(v, xp) for k, v in module.grads.items()}
            module.buffers = {k: to_device(v, xp) for k, v in module.buffers.items()}
            module.cache = None
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters then buffers as ``{dotted_name: host NumPy copy}``."""
        state = {name: to_numpy(a).copy() for name, a in self.named_parameters()}
        state.update({name: to_numpy(a).copy() for name, a in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` (host or device arrays) into parameters and buffers, in place.

        Every name must be present with the model's shape, and nothing else;
        otherwise :class:`StateDictError` names the first mismatch and nothing is
        copied. Values are cast to each array's dtype and moved to its device.
        """
        targets = dict(self.named_parameters())
        targets.update(self.named_buffers())
        _check_state_names_and_shapes(targets, state)
        for name, target in targets.items():
            target[...] = to_device(to_numpy(state[name]), get_xp(target))

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def layer_errors(self):
        """Re-raise a :class:`ShapeError` of an op with this layer's name prepended."""
        try:
            yield
        except ShapeError as err:
            raise ShapeError(f"in layer {self.label()}: {err}") from err

    def label(self) -> str:
        """``'conv1' (Conv2d(3, 96, ...))``: dotted name and layer, for messages."""
        return f"'{self.name or '<root>'}' ({self!r})"

    def _take_cache(self):
        """The last forward's cache, released here: each forward serves one
        backward, and activations are freed as the backward pass goes (as PyTorch
        frees its saved tensors), which lowers the step's peak memory."""
        if self.cache is None:
            raise RuntimeError(f"layer {self.label()}: backward() was called without "
                               "a forward() since the last backward()")
        cache, self.cache = self.cache, None
        return cache

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        """The constructor arguments shown by ``repr``; layers override it."""
        return ""


def _check_state_names_and_shapes(targets: dict, state: dict) -> None:
    """Raise :class:`StateDictError` naming the first missing, extra or bad entry."""
    for name, target in targets.items():
        if name not in state:
            raise StateDictError(f"load_state_dict: missing entry '{name}' "
                                 f"(expected shape {tuple(target.shape)})")
        value = state[name]  # a host or device array (np.shape would read a device one)
        shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
        if shape != tuple(target.shape):
            raise StateDictError(f"load_state_dict: shape mismatch for '{name}': model "
                                 f"has {tuple(target.shape)}, state dict has {shape}")
    for name in state:
        if name not in targets:
            raise StateDictError(f"load_state_dict: unexpected entry '{name}' "
                                 "(no parameter or buffer of that name in the model)")
