"""A strict stand-in for a GPU array module, built on NumPy, for CPU-only tests.

lars_ref promises one code path for NumPy and CuPy: every op takes ``xp =
get_xp(...)`` from its inputs and no value is read back to the host inside a
training step, except at the logging interval's one gather. Without a GPU that
promise cannot be run, so this module fakes the device where NumPy code usually
breaks on CuPy:

* ``np.asarray(a)`` (``__array__``) raises ``TypeError``, as CuPy does; so does any
  ``np.<function>`` called on a device array (CuPy would dispatch some of them;
  the library's rule is ``xp.<function>``).
* a host ``np.ndarray`` mixed into a device op (``xp.where(c, a, host)``,
  ``device + host``, ``device[...] = host``) raises ``TypeError``, as in CuPy.
* ``float()``, ``int()``, ``bool()``, ``operator.index``, ``.item()``, ``.tolist()``,
  iteration, ``str()`` and ``format()`` raise :class:`HostReadError`. CuPy does not
  raise there: it silently copies to the host and waits for the GPU, which is
  the hidden synchronisation this probe exists to find.
* integer-array indices wrap around the axis, as CuPy's do, so code cannot rely
  on NumPy's ``IndexError`` for out-of-bounds labels.

The one way back to the host is the library's own :func:`lars_ref.backend.to_numpy`
(or ``a.get()``, CuPy's spelling); each call is logged in :data:`TRANSFERS`, so a
test can count the device-to-host copies of a training step.

Use: ``xp = strict_device.xp``; ``to_device(host_array, xp)``; then run any
lars_ref code on the result. Importing this module registers it with
:func:`lars_ref.backend.register_device_module`. Tested in
``tests/test_strict_device.py``; the probe runs of a training step are in
``tests/test_host_transfers.py`` (see ``docs/gpu.md``).
"""
from __future__ import annotations

import operator
import traceback
import types

import numpy as np

from lars_ref import backend

TRANSFERS: list = []
"""One entry per device-to-host copy: ``"<shape> <dtype> at file:line"``."""


class HostReadError(TypeError):
    """A device value was read by the host implicitly (a hidden GPU synchronisation)."""


def _caller() -> str:
    """``file:line`` of the first frame outside this module and the backend."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if frame.filename not in (__file__, backend.__file__):
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def _host_read(what: str):
    raise HostReadError(f"{what} of a device array: a hidden device-to-host copy (on a "
                        "GPU also a synchronisation). Keep the value on the device, or "
                        "copy it once, on purpose, with lars_ref.backend.to_numpy")


def _reject_host_array(value) -> None:
    if isinstance(value, np.ndarray):
        raise TypeError(f"a host numpy.ndarray {value.shape} was mixed into a device "
                        "op (CuPy raises 'Unsupported type <class 'numpy.ndarray'>'); "
                        "move it first with lars_ref.backend.to_device(a, xp)")


def _unwrap(value):
    """Device arrays to their NumPy data (also in lists/tuples); reject host arrays."""
    if isinstance(value, StrictArray):
        return value._data
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item) for item in value)
    _reject_host_array(value)
    return value


def _wrap(value):
    """NumPy results (arrays and NumPy scalars) back to device arrays."""
    if isinstance(value, (np.ndarray, np.generic)):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


def _wrap_index(key, shape):
    """Unwrap an index; integer-array indices wrap around their axis (CuPy's rule)."""
    parts = key if isinstance(key, tuple) else (key,)
    simple = not any(part is Ellipsis or part is None for part in parts)
    out = []
    for axis, part in enumerate(parts):
        if isinstance(part, StrictArray):
            part = part._data
        if (simple and isinstance(part, np.ndarray) and part.dtype.kind in "iu"
                and axis < len(shape) and shape[axis] > 0):
            part = np.mod(part, shape[axis])
        out.append(part)
    return tuple(out) if isinstance(key, tuple) else out[0]


class StrictArray:
    """A device array on the probe: NumPy data that refuses implicit host reads."""

    __slots__ = ("_data",)
    __hash__ = None
    __array_priority__ = 100

    def __init__(self, data: np.ndarray):
        self._data = data

    # --- metadata (host-side in CuPy too: no transfer) ---------------------------
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    nbytes = property(lambda self: self._data.nbytes)
    itemsize = property(lambda self: self._data.itemsize)
    strides = property(lambda self: self._data.strides)
    flags = property(lambda self: self._data.flags)
    T = property(lambda self: StrictArray(self._data.T))

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"StrictArray(shape={self.shape}, dtype={self.dtype})"

    # --- the explicit copy to the host (CuPy's .get()) ---------------------------
    def get(self) -> np.ndarray:
        TRANSFERS.append(f"{self.shape} {self.dtype} at {_caller()}")
        return self._data.copy()

    # --- implicit host reads: all refused ----------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (as in "
                        "CuPy); use lars_ref.backend.to_numpy")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a device array; use the "
                        "array module of the data, xp = lars_ref.backend.get_xp(...)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for value in inputs:                        # host_array + device_array
            _reject_host_array(value)
        if method == "__call__" and any(isinstance(v, np.generic) for v in inputs):
            # numpy_scalar * device_array: NumPy's scalar operator lands here (CuPy
            # accepts NumPy scalars as it accepts Python numbers)
            return _wrap(ufunc(*_unwrap(inputs), **_unwrap_kwargs(kwargs)))
        raise TypeError(f"numpy.{ufunc.__name__} called on a device array; use "
                        "xp = lars_ref.backend.get_xp(...)")

    def __bool__(self):
        _host_read("bool()")

    def __float__(self):
        _host_read("float()")

    def __int__(self):
        _host_read("int()")

    def __complex__(self):
        _host_read("complex()")

    def __index__(self):
        _host_read("use as a Python int (operator.index)")

    def __iter__(self):
        _host_read("iteration")

    def __str__(self):
        _host_read("str()")

    def __format__(self, spec):
        _host_read("format()")

    def item(self, *args):
        _host_read(".item()")

    def tolist(self):
        _host_read(".tolist()")

    # --- indexing ----------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap(self._data[_wrap_index(key, self.shape)])

    def __setitem__(self, key, value):
        self._data[_wrap_index(key, self.shape)] = _unwrap(value)

    # --- every other method (sum, astype, reshape, ...) runs on the data ----------
    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__, __dlpack__, ...: no host view
            raise AttributeError(name)
        attribute = getattr(self._data, name)
        if not callable(attribute):
            return _wrap(attribute)
        return lambda *args, **kwargs: _wrap(attribute(*_unwrap(args),
                                                       **_unwrap_kwargs(kwargs)))


def _unwrap_kwargs(kwargs: dict) -> dict:
    return {key: _unwrap(value) for key, value in kwargs.items()}


def _operator(function, reflected=False):
    def method(self, other):
        a, b = (other, self) if reflected else (self, other)
        return _wrap(function(_unwrap(a), _unwrap(b)))
    return method


def _in_place(function):
    def method(self, other):
        function(self._data, _unwrap(other))
        return self
    return method


_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
           "truediv": operator.truediv, "floordiv": operator.floordiv,
           "mod": operator.mod, "pow": operator.pow, "matmul": operator.matmul,
           "and": operator.and_, "or": operator.or_, "xor": operator.xor}
_IN_PLACE = {"add": operator.iadd, "sub": operator.isub, "mul": operator.imul,
             "truediv": operator.itruediv, "floordiv": operator.ifloordiv,
             "pow": operator.ipow, "and": operator.iand, "or": operator.ior}
for _name, _function in _BINARY.items():
    setattr(StrictArray, f"__{_name}__", _operator(_function))
    setattr(StrictArray, f"__r{_name}__", _operator(_function, reflected=True))
for _name, _function in _IN_PLACE.items():
    setattr(StrictArray, f"__i{_name}__", _in_place(_function))
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(StrictArray, f"__{_name}__", _operator(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__",
            (lambda f: lambda self: StrictArray(np.asarray(f(self._data))))(
                getattr(operator, _name)))


class _DeviceFunction:
    """A NumPy function or ufunc seen from the device: device arrays in and out."""

    def __init__(self, function, accepts_host: bool = False):
        self._function, self._accepts_host = function, accepts_host
        self.__name__ = getattr(function, "__name__", repr(function))

    def __call__(self, *args, **kwargs):
        if self._accepts_host and args and not isinstance(args[0], StrictArray):
            return StrictArray(np.array(self._function(*args, **kwargs)))  # to device
        return _wrap(self._function(*_unwrap(args), **_unwrap_kwargs(kwargs)))

    def __getattr__(self, name):                    # ufunc methods: np.add.at, .reduce
        return _DeviceFunction(getattr(self._function, name))


_HOST_TO_DEVICE = ("asarray", "array")  # host data in, a copy on the device out


class _DeviceModule(types.ModuleType):
    """``numpy`` (or a submodule) whose functions take and return device arrays."""

    def __init__(self, host_module):
        super().__init__(f"strict_device<{host_module.__name__}>")
        self._host_module = host_module

    def __getattr__(self, name):
        attribute = getattr(self._host_module, name)
        if isinstance(attribute, types.ModuleType):
            return _DeviceModule(attribute)
        if isinstance(attribute, type) or not callable(attribute):
            return attribute                        # dtypes (xp.float32), constants
        return _DeviceFunction(attribute, accepts_host=name in _HOST_TO_DEVICE)


xp = _DeviceModule(np)
"""The double's array module, used like ``cupy``: ``to_device(a, xp)``, ``xp.zeros``."""


def to_host(a: StrictArray) -> np.ndarray:
    """The probe's explicit device-to-host copy (what ``cupy.asnumpy`` is to CuPy)."""
    return a.get()


backend.register_device_module(StrictArray, xp, "strict_device", to_host)


def count_transfers(function, *args, **kwargs):
    """Run ``function``; return ``(its result, the device-to-host copies it made)``."""
    start = len(TRANSFERS)
    result = function(*args, **kwargs)
    return result, TRANSFERS[start:]
