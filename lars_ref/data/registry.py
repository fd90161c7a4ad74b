"""One entry point for every dataset: ``load_dataset(name, data_dir=None, ...)``.

==============  ===========================================  ===========================
name            source (under the data directory)            x: (C, H, W), N train/test
==============  ===========================================  ===========================
digits          scikit-learn's bundled 8x8 digits (offline)  (1, 8, 8), 1437/360
mnist           mnist/*-ubyte[.gz] (IDX)                     (1, 28, 28), 60000/10000
fashion_mnist   fashion-mnist/*-ubyte[.gz] (IDX)             (1, 28, 28), 60000/10000
cifar10         cifar10/cifar-10-python.tar.gz or folder     (3, 32, 32), 50000/10000
cifar10_jpg     cifar10-jpg/CIFAR-10-images.tar (lossy)      (3, 32, 32), 50000/10000
image_folder    data_dir itself: <split>/<class>/*.png|jpg   any one size
==============  ===========================================  ===========================

The data directory is ``data_dir`` or else ``$LARS_REF_DATA``; ``image_folder``
takes the root folder (or .tar) itself as ``data_dir``.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

from lars_ref.data.cifar import load_cifar10
from lars_ref.data.datasets import Dataset, load_digits
from lars_ref.data.errors import DataError
from lars_ref.data.idx import load_fashion_mnist, load_mnist
from lars_ref.data.image_folder import load_cifar10_jpg, load_image_folder


def _digits(data_dir=None, **options) -> Dataset:
    return load_digits(**options)  # bundled with scikit-learn: no data_dir needed


LOADERS = {
    "digits": _digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar10_jpg": load_cifar10_jpg,
    "image_folder": load_image_folder,
}


def dataset_names() -> tuple[str, ...]:
    """The names :func:`load_dataset` knows."""
    return tuple(LOADERS)


def load_dataset(name: str, data_dir=None, **options) -> Dataset:
    """Load a dataset by name as host arrays (see the table in this module).

    Parameters
    ----------
    name : one of :func:`dataset_names`
    data_dir : the data directory (default ``$LARS_REF_DATA``); for
        ``image_folder`` the root folder or .tar itself
    **options : passed to the loader, e.g. ``verify=False`` (mnist, cifar10,
        ...), ``split_seed`` (digits), ``grayscale`` (image_folder)

    Returns
    -------
    Dataset
        ``x_train: (N_train, C, H, W)`` uint8, ``y_train: (N_train,)`` int64,
        ``x_test``, ``y_test`` likewise, ``classes``, ``name``.

    Raises
    ------
    DataError
        Unknown name, missing directory or file, or a file that fails its checks.
    """
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; known datasets: "
                        f"{', '.join(dataset_names())}")
    return LOADERS[name](data_dir, **options)
