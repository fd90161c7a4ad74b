"""Shared fixtures: a seeded NumPy Generator and an array-backend fixture.

``xp`` runs a test once with NumPy and once with CuPy; the CuPy run is marked
``gpu`` and skipped when no GPU is usable, so the default CPU run stays green.
"""

import numpy as np
import pytest

from lars_ref.backend import gpu_available, resolve_backend

SEED = 20170823  # any fixed seed: tests must not depend on luck

BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("strict_device", id="strict_device"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(
                not gpu_available(), reason="CuPy with a usable GPU needed"
            ),
        ],
    ),
]


@pytest.fixture(params=BACKEND_PARAMS)
def xp(request):
    """The array module under test: numpy, or cupy when a GPU is usable."""
    if request.param == "strict_device":
        from lars_ref.tools import strict_device
        return strict_device.xp
    return resolve_backend(request.param)


@pytest.fixture
def rng():
    """A fresh seeded numpy Generator (host-side randomness, identical on every run)."""
    return np.random.default_rng(SEED)


DEVICE_PARAMS = [
    pytest.param("strict_device", id="strict_device"),
    pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
]


@pytest.fixture(params=DEVICE_PARAMS)
def cupy_xp(request):
    """A device array module, for tests that compare device runs against NumPy.

    Always the strict CPU double of ``lars_ref/tools/strict_device.py`` (hidden host
    reads raise); CuPy too, marked ``gpu`` and skipped without a usable GPU.
    """
    if request.param == "strict_device":
        from lars_ref.tools import strict_device
        return strict_device.xp
    if not gpu_available():
        pytest.skip("CuPy with a usable GPU needed")
    return resolve_backend("cupy")
