"""The host allocator setting of the commands that train or time (not of the library).

Introduced in ``docs/performance.md`` (the measured 15% of a ResNet-20 CPU step).
"""
from __future__ import annotations


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
