"""The :class:`Dataset` record, the data directory, and the built-in 8x8 digits.

Every loader returns host NumPy arrays in one shape convention:

* images ``x_train: (N_train, C, H, W)`` and ``x_test: (N_test, C, H, W)``, dtype
  ``uint8``, NCHW, the pixels exactly as stored (0..255; the 8x8 digits are
  0..16, as scikit-learn ships them);
* labels ``y_train: (N_train,)`` and ``y_test: (N_test,)``, dtype ``int64``,
  indices into ``classes``.

Scaling and normalisation are left to :mod:`lars_ref.data.augment`, computed on
the training split only.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lars_ref.data import sources
from lars_ref.data.errors import DataError

DATA_ENV = "LARS_REF_DATA"

DIGITS_TEST_PER_CLASS = 36  # 10 classes x 36 = 360 test images, 1437 train images


class Dataset(NamedTuple):
    """A classification dataset as host arrays.

    Attributes
    ----------
    x_train : (N_train, C, H, W) uint8
    y_train : (N_train,) int64, values in ``range(len(classes))``
    x_test : (N_test, C, H, W) uint8
    y_test : (N_test,) int64
    classes : tuple of str, the class names in label order
    name : str, the registry name (``"mnist"``, ``"cifar10_jpg"``, ...)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    name: str


def fetch_hint(dataset: str, data_dir="/path/to/data", folder=None) -> str:
    """What to do to get ``dataset`` into ``data_dir`` (its ``folder``), in words."""
    if dataset in sources.REMOTE:
        return f"run `lars-ref download {dataset} --data-dir {data_dir}`"
    return (f"copy the {dataset} files into {folder or data_dir} by hand (lars-ref "
            "cannot download this dataset)")


def resolve_data_dir(data_dir, dataset: str) -> Path:
    """Return the data directory: ``data_dir``, else ``$LARS_REF_DATA``.

    Raises
    ------
    DataError
        Neither is given, or the directory does not exist.
    """
    where = "data_dir" if data_dir is not None else f"${DATA_ENV}"
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not data_dir:
        raise DataError(f"dataset {dataset!r} needs a data directory: pass "
                        f"data_dir=... or set {DATA_ENV}=/path/to/data; to get the "
                        f"files, {fetch_hint(dataset)}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory {path} (from {where}) does not exist; "
                        f"{fetch_hint(dataset, path)}, or point {DATA_ENV} at the "
                        "folder that holds your datasets")
    return path


def find_first(folder: Path, names, dataset: str) -> Path:
    """Return the first of ``folder / name`` that exists, or raise DataError."""
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{dataset}: none of {', '.join(names)} in {folder}; "
                    f"{fetch_hint(dataset, folder.parent, folder)}")


def check_labels(y: np.ndarray, num_classes: int, where) -> np.ndarray:
    """Return ``y`` as int64, or raise DataError if a label is outside 0..C-1."""
    y = np.asarray(y).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels span {y.min()}..{y.max()}, expected "
                        f"0..{num_classes - 1}; the file is corrupt")
    return y


def load_digits(*, split_seed: int = 0,
                test_per_class: int = DIGITS_TEST_PER_CLASS) -> Dataset:
    """scikit-learn's bundled 8x8 digits with a fixed, stratified split.

    The always-offline default (1797 images, 10 classes, no download). For each
    class, ``numpy.random.default_rng(split_seed)`` permutes its indices and the
    first ``test_per_class`` go to the test split; both splits keep the original
    sample order. The defaults give 1437 train / 360 test images.

    Returns
    -------
    Dataset
        ``x: (N, 1, 8, 8)`` uint8 with values 0..16, ``y: (N,)`` int64.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = bunch.images.astype(np.uint8)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    is_test = np.zeros(len(y), dtype=bool)
    for label in range(10):
        members = np.flatnonzero(y == label)
        if test_per_class > len(members):
            raise DataError(f"digits: test_per_class={test_per_class} but class "
                            f"{label} has only {len(members)} images")
        is_test[rng.permutation(members)[:test_per_class]] = True
    classes = tuple(str(label) for label in range(10))
    return Dataset(x[~is_test], y[~is_test], x[is_test], y[is_test], classes, "digits")
