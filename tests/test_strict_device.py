"""The strict device double: it refuses what CuPy refuses and every hidden host read,
counts explicit copies, and computes exactly what NumPy computes."""
import numpy as np
import pytest

from lars_ref.backend import backend_name, get_xp, to_device, to_numpy
from lars_ref.tools import strict_device
from lars_ref.tools.strict_device import HostReadError, StrictArray

xp = strict_device.xp


@pytest.fixture
def a():
    return to_device(np.arange(6.0).reshape(2, 3), xp)


def test_backend_recognises_the_double(a):
    assert isinstance(a, StrictArray) and get_xp(a) is xp and get_xp(np.ones(1), a) is xp
    assert backend_name(xp) == "strict_device"
    assert to_device(a, xp) is not None and get_xp(to_device(a, np)) is np


@pytest.mark.parametrize("read", [
    float, int, bool, complex, list, str, lambda v: f"{v}", lambda v: v.item(),
    lambda v: v.tolist(), lambda v: range(v), lambda v: [0, 1][v]])
def test_every_implicit_host_read_raises(read, a):
    scalar = a.sum()
    with pytest.raises(HostReadError, match="hidden device-to-host copy"):
        read(scalar if read is not list else a)


@pytest.mark.parametrize("call", [np.asarray, np.mean, np.exp, np.linalg.norm,
                                  lambda v: np.add(v, 1)])
def test_numpy_functions_on_a_device_array_raise(call, a):
    with pytest.raises(TypeError):
        call(a)


@pytest.mark.parametrize("mix", [
    lambda v, h: v + h, lambda v, h: h * v, lambda v, h: xp.where(v > 1, v, h),
    lambda v, h: xp.maximum(v, h), lambda v, h: v.__setitem__(Ellipsis, h)])
def test_host_arrays_in_device_ops_raise(mix, a):
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        mix(a, np.ones((2, 3)))


def test_results_equal_numpy_bit_for_bit(a):
    host = np.arange(6.0).reshape(2, 3)
    got = xp.sqrt(xp.vdot(a, a)) * 2 - a.sum(axis=0).max() / (a.T @ a)[1, 1]
    want = np.sqrt(np.vdot(host, host)) * 2 - host.sum(axis=0).max() / (host.T @ host)[1, 1]
    assert to_numpy(got) == want
    b = xp.zeros_like(a)
    b += a
    b[0, 1:] = xp.asarray(7.0)
    host_b = host.copy()
    host_b[0, 1:] = 7.0
    np.testing.assert_array_equal(to_numpy(b), host_b)


def test_numpy_scalars_mix_with_device_arrays_as_in_cupy(a):
    for product in (np.float64(2.0) * a, a * np.float32(2.0), np.int64(2) + a):
        assert get_xp(product) is xp
    np.testing.assert_array_equal(to_numpy(np.float64(2.0) * a), 2 * np.arange(6.0)
                                  .reshape(2, 3))


def test_integer_array_indices_wrap_as_in_cupy(a):
    rows = xp.asarray(np.array([0, 1]))
    wrapped = a[rows, xp.asarray(np.array([3, -1]))]   # column 3 of 3 -> column 0
    np.testing.assert_array_equal(to_numpy(wrapped), [0.0, 5.0])


def test_explicit_copies_are_counted_with_their_place(a):
    _, copies = strict_device.count_transfers(lambda: to_numpy(a.sum()))
    assert len(copies) == 1 and "test_strict_device.py" in copies[0]
    _, none = strict_device.count_transfers(lambda: a * 2)
    assert none == []


def test_asarray_copies_host_data_and_keeps_device_data(a):
    host = np.zeros(3)
    device = xp.asarray(host)
    host[0] = 1.0                                   # the device copy does not follow
    assert to_numpy(device)[0] == 0.0
    same = xp.asarray(a)
    same[0, 0] = 9.0                                # as cupy.asarray: no copy
    assert to_numpy(a)[0, 0] == 9.0 and to_numpy(xp.array(a))[0, 0] == 9.0


def test_repr_shows_no_values(a):
    assert repr(a) == "StrictArray(shape=(2, 3), dtype=float64)"
