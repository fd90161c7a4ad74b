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


def get_xp(*arrays):
    """Return the array module of the given arrays: cupy if any is a CuPy array.

    Arrays of mixed devices are the caller's bug; CuPy raises on the first op.
    """
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def to_device(a, xp):
    """Copy a host (or device) array onto the backend ``xp``; no copy if already there."""
    if xp is np:
        return to_numpy(a)
    return xp.asarray(a)


def to_numpy(a):
    """Return ``a`` as a NumPy array (device-to-host copy for CuPy arrays)."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def backend_name(xp) -> str:
    """"numpy" or "cupy", for logs and checkpoints."""
    return "cupy" if (xp is not np) else "numpy"


def keep_freed_host_memory(mmap_threshold: int = 32 * 2**20) -> bool:
    """Let glibc's malloc keep freed large blocks for reuse, process-wide.

    NumPy allocates a fresh array for every temporary. By default glibc serves
    blocks above a (dynamic) threshold with ``mmap`` and returns them on free, so
    the kernel zero-fills new pages on every training step; with im2col buffers
    of tens of MB that costs about 15% of a ResNet-20 step on the CPU
    (``docs/performance.md``). This raises the mmap threshold and stops trimming
    the heap: freed blocks are reused, at the price of a process that keeps its
    peak host memory. Called by the ``lars-ref`` commands that train or time.

    Returns True when the setting was applied, False off glibc (nothing changed).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl builds)
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc <malloc.h>
    settings = ((M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, 2**31 - 1),
                (M_TOP_PAD, 256 * 2**20))
    return all(mallopt(option, value) == 1 for option, value in settings)
