"""Array backend: the only module of lars_ref that imports CuPy.

Every op finds its array module from its inputs with :func:`get_xp`, so NumPy and
CuPy code share one path and can coexist in one process (no global switch). The
device is chosen once, where data and parameters are created, with
:func:`resolve_backend` and moved there with :func:`to_device`.

``import lars_ref`` works with no CuPy installed, and with CuPy installed on a
machine without a usable GPU: CuPy is only probed when it is asked for.
"""
from __future__ import annotations

import functools

import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "auto")

try:  # CuPy is optional: the import itself may fail, or succeed with no GPU.
    import cupy as _cupy
except Exception:  # ImportError, or a broken CUDA install raising at import
    _cupy = None


class BackendError(RuntimeError):
    """The requested array backend cannot be used; the message names the fix."""


@functools.lru_cache(maxsize=None)
def cupy_status() -> str:
    """Return "ok" when CuPy can run on a GPU, else a sentence saying why not."""
    if _cupy is None:
        return ("CuPy is not installed. Install the GPU extra that matches your CUDA "
                "version, e.g. `pip install 'lars-ref[gpu]'` (cupy-cuda12x), or use "
                "--backend numpy.")
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # no driver, no device, mismatched CUDA
        return (f"CuPy is installed but no GPU is usable ({type(err).__name__}: {err}). "
                "Check `nvidia-smi` and the CUDA version of your cupy wheel, or use "
                "--backend numpy.")
    if count == 0:
        return "CuPy is installed but it sees no GPU; use --backend numpy."
    return "ok"


def gpu_available() -> bool:
    """True when the "cupy" backend can be used on this machine."""
    return cupy_status() == "ok"


def resolve_backend(name: str = "numpy"):
    """Return the array module (numpy or cupy) for "numpy", "cupy" or "auto".

    "auto" picks CuPy when a GPU is usable and NumPy otherwise. "cupy" raises
    :class:`BackendError` with the fix when CuPy is missing or no GPU is usable.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "numpy" or (name == "auto" and not gpu_available()):
        return np
    status = cupy_status()
    if status != "ok":
        raise BackendError(f"backend 'cupy' requested, but {status}")
    return _cupy


# The device array modules get_xp recognises, as (array type, module, name, to_host).
# CuPy is registered below when it imports; a test double registers itself the same
# way (``lars_ref/tools/strict_device.py``), so no op ever names a device library.
_DEVICE_MODULES: list = []


def register_device_module(array_type, module, name: str, to_host) -> None:
    """Make ``get_xp``, ``to_numpy`` and ``backend_name`` know a device array module.

    ``to_host(a)`` is the one explicit device-to-host copy of that module
    (``cupy.asnumpy`` for CuPy). Registering the same ``array_type`` again replaces it.
    """
    _DEVICE_MODULES[:] = [entry for entry in _DEVICE_MODULES
                          if entry[0] is not array_type]
    _DEVICE_MODULES.append((array_type, module, name, to_host))


def _device_entry(a):
    for entry in _DEVICE_MODULES:
        if isinstance(a, entry[0]):
            return entry
    return None


if _cupy is not None:
    register_device_module(_cupy.ndarray, _cupy, "cupy", _cupy.asnumpy)


def get_xp(*arrays):
    """Return the array module of the given arrays: cupy if any is a CuPy array.

    Arrays of mixed devices are the caller's bug; CuPy raises on the first op.
    """
    for a in arrays:
        entry = _device_entry(a)
        if entry is not None:
            return entry[1]
    return np


def to_device(a, xp):
    """Copy a host (or device) array onto the backend ``xp``; no copy if already there."""
    if xp is np:
        return to_numpy(a)
    return xp.asarray(a)


def to_numpy(a):
    """``a`` as a NumPy array: the one explicit device-to-host copy of lars_ref."""
    entry = _device_entry(a)
    if entry is not None:
        return entry[3](a)
    return np.asarray(a)


def backend_name(xp) -> str:
    """"numpy", "cupy" (or a registered double's name), for logs and checkpoints."""
    for _, module, name, _ in _DEVICE_MODULES:
        if xp is module:
            return name
    return "numpy"


