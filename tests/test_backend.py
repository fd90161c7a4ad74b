"""The backend module: name resolution, host/device moves, clear errors without a GPU."""
import numpy as np
import pytest

from lars_ref import backend


def test_resolve_numpy_and_auto_without_gpu():
    assert backend.resolve_backend("numpy") is np
    if not backend.gpu_available():
        assert backend.resolve_backend("auto") is np


def test_resolve_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="numpy, cupy, auto"):
        backend.resolve_backend("tpu")


@pytest.mark.skipif(backend.gpu_available(), reason="a usable GPU is present")
def test_cupy_requested_without_gpu_names_the_fix():
    with pytest.raises(backend.BackendError, match="--backend numpy"):
        backend.resolve_backend("cupy")


def test_get_xp_of_host_arrays_is_numpy():
    assert backend.get_xp(np.zeros(2), np.ones(3)) is np
    assert backend.get_xp() is np


def test_to_numpy_and_to_device_round_trip_on_host():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = backend.to_device(a, np)
    assert b.dtype == np.float32 and np.array_equal(backend.to_numpy(b), a)
    assert backend.backend_name(np) == "numpy"


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a usable GPU")
def test_cupy_round_trip_is_exact():
    cp = backend.resolve_backend("cupy")
    a = np.random.default_rng(0).standard_normal((3, 4))
    d = backend.to_device(a, cp)
    assert backend.get_xp(d) is cp and backend.get_xp(a, d) is cp
    assert np.array_equal(backend.to_numpy(d), a)


def test_keep_freed_host_memory_applies_on_glibc_and_is_harmless():
    import platform
    from lars_ref.tools.host_memory import keep_freed_host_memory
    applied = keep_freed_host_memory()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied is True
    a = np.ones(10 * 2**20, dtype=np.float32)  # 40 MB: above the old mmap threshold
    assert float(a.sum()) == 10 * 2**20
