"""Augmentation: exact crops, flips, per-channel normalisation, seeded determinism."""
import numpy as np
import pytest

from lars_ref.data import (DataError, augment, channel_stats, crop_at, eval_transform,
                           flip_where, normalize, random_crop, random_flip,
                           train_transform)

IMAGE = np.array([[1, 2, 3],
                  [4, 5, 6],
                  [7, 8, 9]], dtype=np.uint8)


def test_crop_at_moves_content_exactly():
    x = np.stack([IMAGE, IMAGE + 10])[None].repeat(3, axis=0)  # (3, 2, 3, 3)
    offsets = np.array([[0, 0], [1, 1], [2, 2]])
    out = crop_at(x, 1, offsets)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
    np.testing.assert_array_equal(out[1, 0], IMAGE)  # offset (pad, pad): unchanged
    np.testing.assert_array_equal(out[2, 0], [[5, 6, 0], [8, 9, 0], [0, 0, 0]])
    np.testing.assert_array_equal(out[0, 1], [[0, 0, 0], [0, 11, 12], [0, 14, 15]])
    np.testing.assert_array_equal(crop_at(x[:1], 1, [[0, 2]])[0, 0],
                                  [[0, 0, 0], [2, 3, 0], [5, 6, 0]])


def all_crops(image, pad):
    """Every crop of one zero-padded (C, H, W) image, by plain slicing."""
    C, H, W = image.shape
    padded = np.zeros((C, H + 2 * pad, W + 2 * pad), image.dtype)
    padded[:, pad:pad + H, pad:pad + W] = image
    return [padded[:, i:i + H, j:j + W] for i in range(2 * pad + 1)
            for j in range(2 * pad + 1)]


def test_random_crop_gives_valid_crops_and_reaches_every_offset(rng):
    x = rng.integers(1, 256, size=(300, 2, 4, 5), dtype=np.uint8)
    before = x.copy()
    out = random_crop(x, 1, np.random.default_rng(3))
    assert out.shape == x.shape and out.dtype == np.uint8
    used = set()
    for n in range(len(x)):
        matches = [k for k, crop in enumerate(all_crops(x[n], 1))
                   if np.array_equal(crop, out[n])]
        assert matches, f"image {n} is not a crop of its padded input"
        used.add(matches[0])
    assert used == set(range(9))
    np.testing.assert_array_equal(x, before)  # input untouched


def test_flip_reverses_width_where_masked(rng):
    x = rng.standard_normal((4, 2, 3, 5)).astype(np.float32)
    mask = np.array([True, False, True, False])
    out = flip_where(x, mask)
    for n in range(4):
        expected = x[n, :, :, ::-1] if mask[n] else x[n]
        np.testing.assert_array_equal(out[n], expected)
    np.testing.assert_array_equal(out[0, 1, 2], x[0, 1, 2][::-1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(random_flip(x, rng, p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(random_flip(x, rng, p=0.0), x)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_normalize_gives_zero_mean_unit_std_per_channel(rng, monkeypatch, dtype):
    monkeypatch.setattr(augment, "STATS_CHUNK", 3)  # exercise several chunks
    x = rng.integers(0, 256, size=(10, 3, 5, 4)).astype(dtype)
    x[:, 2] //= 4  # give the channels different statistics
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)),
                               rtol=1e-6)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-6)
    z = normalize(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.astype(np.float64).mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(z.astype(np.float64).std(axis=(0, 2, 3)), 1, rtol=1e-5)


def test_normalize_bad_input_is_named():
    x = np.ones((2, 3, 2, 2), np.float32)
    with pytest.raises(DataError, match="3 channels"):
        normalize(x, np.zeros(2, np.float32), np.ones(2, np.float32))
    with pytest.raises(DataError, match="constant"):
        channel_stats(x)
    with pytest.raises(DataError, match="values in 0..2"):
        crop_at(x, 1, [[0, 3], [0, 0]])
    with pytest.raises(DataError, match="mask"):
        flip_where(x, [True])


def test_transforms_are_seeded_and_deterministic(rng):
    x = rng.integers(0, 256, size=(16, 3, 6, 6), dtype=np.uint8)
    mean, std = channel_stats(x)
    transform = train_transform(mean, std, pad=2)
    a = transform(x, np.random.default_rng(7))
    b = transform(x, np.random.default_rng(7))
    c = transform(x, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(eval_transform(mean, std)(x), normalize(x, mean, std))
    padded_pixel = normalize(np.zeros((1, 3, 1, 1), np.uint8), mean, std)[0, :, 0, 0]
    border = crop_at(x, 2, np.zeros((16, 2), int))  # top-left offsets: black border
    np.testing.assert_array_equal(normalize(border, mean, std)[0, :, 0, 0],
                                  padded_pixel)
