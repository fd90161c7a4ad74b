"""Datasets as host arrays, hash-checked downloads, augmentation and batching.

* :func:`load_dataset` (``registry.py``): digits, MNIST, Fashion-MNIST,
  CIFAR-10, image folders, all as :class:`Dataset` with NCHW uint8 images.
* :func:`download` (``download.py``): the official files, checked by hash.
* ``augment.py``: per-channel normalisation, random crop with padding, flip.
* :class:`BatchIterator` (``batching.py``): seeded, resumable mini-batches.

Every bad input raises :class:`DataError` (a ``ValueError``) saying what to do.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from lars_ref.data.augment import (channel_stats, crop_at, eval_transform, flip_where,
                                   normalize, random_crop, random_flip, train_transform)
from lars_ref.data.batching import BatchIterator
from lars_ref.data.datasets import DATA_ENV, Dataset, load_digits
from lars_ref.data.download import download
from lars_ref.data.errors import DataError
from lars_ref.data.registry import dataset_names, load_dataset

__all__ = [
    "BatchIterator", "DATA_ENV", "DataError", "Dataset",
    "channel_stats", "crop_at", "dataset_names", "download", "eval_transform",
    "flip_where", "load_dataset", "load_digits", "normalize", "random_crop",
    "random_flip", "train_transform",
]
