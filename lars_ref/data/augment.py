"""Host-side preprocessing: per-channel normalisation, random crop, horizontal flip.

**Paper.** You, Gitman, Ginsburg (2017), footnote 7: "minimal data augmentation
(pre-scale images to 256x256 and use random 224x224 crop with horizontal
flip)". At the small scale of this package the same idea is the standard
CIFAR recipe: pad a 32x32 image by 4 zero pixels on each side, take a random
32x32 crop, and flip it left-right with probability 1/2. Pixels are then
normalised per channel with the mean and standard deviation of the *training*
split.

All functions take NCHW arrays ``x: (N, C, H, W)``, never modify them, draw
randomness only from the ``numpy.random.Generator`` they are given, and are
vectorised over the batch (no loop over images).

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lars_ref.data.errors import DataError

STATS_CHUNK = 4096  # images per chunk when computing statistics in float64


def channel_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) standard deviation of a training split.

    Computed in float64 in two passes over chunks of images, so a uint8 array
    of 50000 CIFAR images never needs a full float64 copy.

    Parameters
    ----------
    x_train : (N, C, H, W) any real dtype

    Returns
    -------
    mean : (C,) float32, mu_c = mean of x[:, c] over (N, H, W)
    std : (C,) float32, sigma_c = sqrt(mean of (x[:, c] - mu_c)^2)
    """
    N, C = x_train.shape[:2]
    count = N * x_train[0, 0].size
    total = np.zeros(C)
    for start in range(0, N, STATS_CHUNK):
        chunk = x_train[start:start + STATS_CHUNK]
        total += chunk.sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    squares = np.zeros(C)
    for start in range(0, N, STATS_CHUNK):
        deviation = x_train[start:start + STATS_CHUNK].astype(np.float64)
        deviation -= mean[:, None, None]
        squares += np.einsum("nchw,nchw->c", deviation, deviation)
    std = np.sqrt(squares / count)
    if np.any(std == 0):
        constant = np.flatnonzero(std == 0).tolist()
        raise DataError(f"channel_stats: channel(s) {constant} of x_train "
                        f"{x_train.shape} are constant; cannot normalise")
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean_c) / std_c`` per channel, as float32.

    Parameters
    ----------
    x : (N, C, H, W) any real dtype
    mean, std : (C,) from :func:`channel_stats` on the training split

    Returns
    -------
    (N, C, H, W) float32
    """
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    if mean.shape != (x.shape[1],) or std.shape != (x.shape[1],):
        raise DataError(f"normalize: x {x.shape} has {x.shape[1]} channels but mean "
                        f"{mean.shape} and std {std.shape}")
    return (x.astype(np.float32) - mean[:, None, None]) / std[:, None, None]


def crop_at(x: np.ndarray, pad: int, offsets: np.ndarray) -> np.ndarray:
    """Zero-pad each image by ``pad`` pixels, then cut an HxW window at ``offsets``.

    Parameters
    ----------
    x : (N, C, H, W)
    pad : int >= 0
    offsets : (N, 2) int, (row, column) of each window's top-left corner in the
        padded image, each in ``0..2*pad``; (pad, pad) returns the image itself

    Returns
    -------
    (N, C, H, W), same dtype as ``x``:
    ``out[n, c, i, j] = padded[n, c, i + dy_n, j + dx_n]``
    """
    N, C, H, W = x.shape
    offsets = np.asarray(offsets)
    if offsets.shape != (N, 2) or offsets.min(initial=0) < 0 or \
            offsets.max(initial=0) > 2 * pad:
        raise DataError(f"crop_at: offsets {offsets.shape} must be (N, 2) = ({N}, 2) "
                        f"with values in 0..{2 * pad} for pad={pad}")
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    # every HxW window of every padded image: (N, C, 2p+1, 2p+1, H, W), a view
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))
    # pick window (dy_n, dx_n) of image n: a fresh (N, C, H, W) array
    return windows[np.arange(N), :, offsets[:, 0], offsets[:, 1]]


def random_crop(x: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Random HxW crop of each zero-padded image (offsets uniform in 0..2*pad).

    Draws ``rng.integers(0, 2 * pad + 1, size=(N, 2))``, then calls :func:`crop_at`.
    """
    offsets = rng.integers(0, 2 * pad + 1, size=(x.shape[0], 2))
    return crop_at(x, pad, offsets)


def flip_where(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mirror left-right (reverse the W axis) the images where ``mask`` is True.

    Parameters
    ----------
    x : (N, C, H, W)
    mask : (N,) bool

    Returns
    -------
    (N, C, H, W), same dtype, a new array
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (x.shape[0],):
        raise DataError(f"flip_where: mask {mask.shape} must be ({x.shape[0]},)")
    return np.where(mask[:, None, None, None], x[..., ::-1], x)


def random_flip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Flip each image left-right with probability ``p`` (draws ``rng.random(N)``)."""
    return flip_where(x, rng.random(x.shape[0]) < p)


def train_transform(mean: np.ndarray, std: np.ndarray, *, pad: int = 4,
                    flip: bool = True):
    """The training transform: random crop, random flip, then normalise.

    Returns
    -------
    callable ``(x: (B, C, H, W), rng) -> (B, C, H, W) float32``, for
    :class:`~lars_ref.data.batching.BatchIterator`. Padding happens before
    normalisation, so the padded border is black (pixel value 0).
    """
    def transform(x, rng):
        x = random_crop(x, pad, rng) if pad else x
        x = random_flip(x, rng) if flip else x
        return normalize(x, mean, std)

    return transform


def eval_transform(mean: np.ndarray, std: np.ndarray):
    """The evaluation transform: normalise only (the paper tests on 1 central crop)."""
    return lambda x, rng=None: normalize(x, mean, std)
