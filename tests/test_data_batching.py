"""BatchIterator: each sample once per epoch, seeded, bit-exact resume mid-epoch."""
import json

import numpy as np
import pytest

from lars_ref.backend import gpu_available, resolve_backend, to_device
from lars_ref.data import BatchIterator, DataError, random_crop


def tiny_split(n=10):
    """Images whose pixels encode their own index, labels = index."""
    x = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(2, 2).repeat(2, 3)
    return x, np.arange(n)


def test_every_sample_once_per_epoch_keeping_the_last_batch():
    x, y = tiny_split(10)
    iterator = BatchIterator(x, y, 3, seed=1)
    assert len(iterator) == 4
    for epoch in range(2):
        batches = list(iterator)
        assert [len(yb) for _, yb in batches] == [3, 3, 3, 1]
        labels = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(labels), np.arange(10))
        for xb, yb in batches:  # each image still travels with its own label
            assert xb.dtype == np.float32 and yb.dtype == np.int64
            np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)
    assert iterator.epoch == 2 and iterator.position == 0


def test_drop_last_skips_the_partial_batch_and_shuffle_changes_per_epoch():
    x, y = tiny_split(10)
    iterator = BatchIterator(x, y, 3, seed=1, drop_last=True)
    epochs = [np.concatenate([yb for _, yb in iterator]) for _ in range(3)]
    assert all(len(e) == 9 and len(set(e)) == 9 for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    ordered = BatchIterator(x, y, 4, shuffle=False)
    served = np.concatenate([yb for _, yb in ordered])
    np.testing.assert_array_equal(served, np.arange(10))


def stream(iterator, count):
    return [iterator.next_batch() for _ in range(count)]


def crop_transform(x, rng):
    return random_crop(x, 1, rng)


def test_same_seed_same_sequence_other_seed_other_sequence(rng):
    x = rng.integers(0, 256, size=(12, 1, 3, 3), dtype=np.uint8)
    y = np.arange(12)
    a = stream(BatchIterator(x, y, 5, seed=3, transform=crop_transform), 7)
    b = stream(BatchIterator(x, y, 5, seed=3, transform=crop_transform), 7)
    c = stream(BatchIterator(x, y, 5, seed=4, transform=crop_transform), 7)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))


@pytest.mark.parametrize("stop_after", [1, 2, 3, 5])
def test_resume_mid_epoch_continues_the_identical_sequence(rng, stop_after):
    x = rng.integers(0, 256, size=(11, 2, 4, 4), dtype=np.uint8)
    y = np.arange(11)
    options = dict(seed=9, transform=crop_transform)
    reference = stream(BatchIterator(x, y, 4, **options), 9)  # 3 per epoch: 3 epochs
    first = BatchIterator(x, y, 4, **options)
    stream(first, stop_after)
    saved = json.loads(json.dumps(first.state_dict()))  # survives a JSON checkpoint
    resumed = BatchIterator(x, y, 4, **options)
    resumed.load_state_dict(saved)
    for (x_ref, y_ref), (x_new, y_new) in zip(reference[stop_after:],
                                              stream(resumed, 9 - stop_after)):
        np.testing.assert_array_equal(x_new, x_ref)
        np.testing.assert_array_equal(y_new, y_ref)


def test_iterating_after_restore_yields_only_the_rest_of_the_epoch():
    x, y = tiny_split(10)
    first = BatchIterator(x, y, 3, seed=2)
    full_epoch = [yb for _, yb in BatchIterator(x, y, 3, seed=2)]
    stream(first, 2)
    resumed = BatchIterator(x, y, 3, seed=2)
    resumed.load_state_dict(first.state_dict())
    rest = [yb for _, yb in resumed]
    assert len(rest) == 2
    for a, b in zip(rest, full_epoch[2:]):
        np.testing.assert_array_equal(a, b)


def test_bad_settings_and_mismatched_state_are_data_errors():
    x, y = tiny_split(10)
    with pytest.raises(DataError, match="different numbers of samples"):
        BatchIterator(x, y[:5], 2)
    with pytest.raises(DataError, match="batch_size=11"):
        BatchIterator(x, y, 11, drop_last=True)
    state = BatchIterator(x, y, 3, seed=1).state_dict()
    with pytest.raises(DataError, match="seed=1 vs 2"):
        BatchIterator(x, y, 3, seed=2).load_state_dict(state)
    with pytest.raises(DataError, match="not the start of a batch"):
        BatchIterator(x, y, 3, seed=1).load_state_dict(dict(state, position=4))


@pytest.mark.parametrize("backend", [
    "numpy",
    pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not gpu_available(), reason="CuPy with a usable GPU needed")]),
])
def test_a_batch_moves_to_the_device_with_its_values(backend):
    xp = resolve_backend(backend)
    x, y = tiny_split(6)
    batch = BatchIterator(x, y, 4, seed=0).next_batch()
    x_dev, y_dev = to_device(batch[0], xp), to_device(batch[1], xp)
    assert type(x_dev) is xp.ndarray and x_dev.dtype == xp.float32
    np.testing.assert_array_equal(xp.asnumpy(x_dev) if backend == "cupy" else x_dev,
                                  batch[0])
    assert y_dev.dtype == xp.int64
