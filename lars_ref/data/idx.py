"""MNIST and Fashion-MNIST from the standard IDX files (gzip-compressed or not).

The IDX format (yann.lecun.com/exdb/mnist): a big-endian header, then the raw
uint8 values in C order::

    bytes 0-1  zero
    byte  2    type code (0x08: unsigned byte)
    byte  3    number of dimensions d
    4*d bytes  the sizes, each an unsigned 32-bit big-endian integer

so the magic number (bytes 0-3 as one integer) is 2051 for the image files
(ubyte, 3 dimensions: N, 28, 28) and 2049 for the label files (ubyte, 1: N).

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lars_ref.data import sources
from lars_ref.data.datasets import (Dataset, check_labels, fetch_hint, find_first,
                                    resolve_data_dir)
from lars_ref.data.errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: ubyte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: ubyte, 1 dimension

MNIST_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def parse_idx(content: bytes, expected_magic: int, where) -> np.ndarray:
    """Decode the bytes of one uncompressed IDX file of unsigned bytes.

    Parameters
    ----------
    content : bytes, the whole (uncompressed) file
    expected_magic : int, 2051 for images or 2049 for labels
    where : the file name, for error messages

    Returns
    -------
    numpy.ndarray
        uint8 of the shape in the header: ``(N, rows, cols)`` or ``(N,)`` (a
        writable copy, not a view of ``content``).

    Raises
    ------
    DataError
        Wrong magic number, or a length that does not match the header.
    """
    if len(content) < 4:
        raise DataError(f"{where}: {len(content)} bytes, too short for an IDX header")
    magic = int.from_bytes(content[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{where}: IDX magic number {magic}, expected {expected_magic} "
                        "(is it the images/labels file you meant, and not corrupt?)")
    ndim = content[3]
    header_bytes = 4 + 4 * ndim
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big")
                  for i in range(ndim))
    expected_bytes = header_bytes + int(np.prod(shape))
    if len(content) != expected_bytes:
        raise DataError(f"{where}: {len(content):,} bytes, but the header {shape} "
                        f"needs {expected_bytes:,}; the file is truncated or corrupt")
    values = np.frombuffer(content, dtype=np.uint8, offset=header_bytes)
    return values.reshape(shape).copy()


def read_idx_file(path: Path, expected_magic: int, *, spec=None,
                  dataset: str = "") -> np.ndarray:
    """Read one IDX file (``.gz`` or raw), check it, and decode it.

    When ``spec`` (a :class:`~lars_ref.data.sources.FileSpec`) is given, the
    content size and hash are verified against it first.
    """
    raw = Path(path).read_bytes()
    if spec is not None:
        content = sources.verify(raw, spec, path, dataset=dataset)
    elif raw[:2] == b"\x1f\x8b":
        content = sources.gunzip(raw, path)
    else:
        content = raw
    return parse_idx(content, expected_magic, path)


def load_idx_pair(folder: Path, prefix: str, *, specs: dict, dataset: str,
                  verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read ``<prefix>-images-idx3-ubyte[.gz]`` and its labels from ``folder``.

    Returns
    -------
    x : (N, 1, rows, cols) uint8
    y : (N,) int64
    """
    arrays = []
    for kind, magic in (("images-idx3", IMAGES_MAGIC), ("labels-idx1", LABELS_MAGIC)):
        name = f"{prefix}-{kind}-ubyte"
        path = find_first(folder, (name + ".gz", name), dataset)
        spec = specs.get(name + ".gz") if verify else None
        arrays.append(read_idx_file(path, magic, spec=spec, dataset=dataset))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{dataset} in {folder}: {prefix} images {images.shape} and "
                        f"labels {labels.shape} do not pair up")
    return images[:, None, :, :], check_labels(labels, 10, folder / f"{prefix} labels")


def load_mnist(data_dir=None, *, verify: bool = True,
               variant: str = "mnist") -> Dataset:
    """MNIST (or Fashion-MNIST with ``variant="fashion_mnist"``) from IDX files.

    Looks in ``<data_dir>/mnist/`` (or ``<data_dir>/fashion-mnist/``) for the
    four files, each ``.gz`` or uncompressed. With ``verify`` (default), the
    content size and hash of each file are checked against the official ones.

    Returns
    -------
    Dataset
        ``x: (N, 1, 28, 28)`` uint8 0..255 in the original sample order,
        N = 60000 train / 10000 test; ``y: (N,)`` int64.
    """
    remote = sources.REMOTE[variant]
    folder = resolve_data_dir(data_dir, variant) / remote.folder
    if not folder.is_dir():
        raise DataError(f"{variant}: folder {folder} does not exist; "
                        f"{fetch_hint(variant, folder.parent)}")
    specs = {spec.name: spec for spec in remote.files}
    x_train, y_train = load_idx_pair(folder, "train", specs=specs, dataset=variant,
                                     verify=verify)
    x_test, y_test = load_idx_pair(folder, "t10k", specs=specs, dataset=variant,
                                   verify=verify)
    classes = MNIST_CLASSES if variant == "mnist" else FASHION_MNIST_CLASSES
    return Dataset(x_train, y_train, x_test, y_test, classes, variant)


def load_fashion_mnist(data_dir=None, *, verify: bool = True) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017) from ``<data_dir>/fashion-mnist/``.

    Same format and sizes as :func:`load_mnist`. Only the md5s of the official
    ``.gz`` files are published, so with ``verify`` a re-compressed copy is
    refused; pass ``verify=False`` to load one (sizes and headers are still
    checked).
    """
    return load_mnist(data_dir, verify=verify, variant="fashion_mnist")
