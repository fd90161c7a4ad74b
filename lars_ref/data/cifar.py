"""CIFAR-10 from the official python batches (Krizhevsky 2009).

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with five training
batches ``data_batch_1..5`` and one ``test_batch`` of 10000 images each, plus
``batches.meta`` (the class names). Each batch is a pickled dict::

    b"data"   : (10000, 3072) uint8, each row 1024 red, 1024 green, 1024 blue
                values of a 32x32 image in row-major order (so a reshape to
                (10000, 3, 32, 32) is already NCHW)
    b"labels" : list of 10000 ints in 0..9

Pickle can run code while loading, so batches are read with an unpickler that
only accepts plain containers and NumPy arrays, after their md5 is checked.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from lars_ref.data import sources
from lars_ref.data.datasets import Dataset, check_labels, find_first, resolve_data_dir
from lars_ref.data.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"

# The only globals a CIFAR batch pickle may name: how NumPy rebuilds an array
# (NumPy 1 names its core "numpy.core", NumPy 2 "numpy._core"), and how
# protocol-2 pickles written by Python 3 store bytes.
_ALLOWED_GLOBALS = {
    (core + module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in ((".multiarray", "_reconstruct"), (".multiarray", "scalar"),
                         (".numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except NumPy's array rebuilders."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        has_new_core = hasattr(np, "_core")
        if module.startswith("numpy.core.") and has_new_core:
            module = module.replace("numpy.core.", "numpy._core.", 1)
        return super().find_class(module, name)


def unpickle_batch(blob: bytes, where) -> dict:
    """Decode one pickled batch (bytes keys, as Python 2 wrote them)."""
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as err:  # any failure means the file is not a valid batch
        raise DataError(f"{where}: not a readable CIFAR batch ({type(err).__name__}: "
                        f"{err}); delete it and download it again") from None
    if not isinstance(batch, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(batch).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}


def decode_batch(blob: bytes, where) -> tuple[np.ndarray, np.ndarray]:
    """Turn one batch file's bytes into images and labels.

    Returns
    -------
    x : (N, 3, 32, 32) uint8
    y : (N,) int64
    """
    batch = unpickle_batch(blob, where)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{where}: batch has keys {sorted(batch)}, expected "
                        "'data' and 'labels'")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: data is {data.dtype} {data.shape}, expected uint8 "
                        "(N, 3072)")
    labels = check_labels(batch["labels"], 10, where)
    if labels.shape != (len(data),):
        raise DataError(f"{where}: {len(labels)} labels for {len(data)} images")
    return data.reshape(-1, 3, 32, 32).copy(), labels


def read_batch_files(source: Path, names) -> dict[str, bytes]:
    """Return ``{name: bytes}`` for the batch files in a folder or a tar(.gz).

    Every name except ``batches.meta`` must be present.
    """
    if source.is_dir():
        found = {name: (source / name).read_bytes() for name in names
                 if (source / name).is_file()}
    else:
        found = _read_from_archive(source, names)
    missing = [name for name in names if name not in found and name != META]
    if missing:
        raise DataError(f"{source}: no {', '.join(missing)} inside; expected the "
                        "official python batches (run `lars-ref download cifar10`)")
    return found


def _read_from_archive(path: Path, names) -> dict[str, bytes]:
    """Read the members whose base name is in ``names`` from a tar(.gz)."""
    found = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names:
                    found[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated archive ({err}); delete it "
                        "and run `lars-ref download cifar10`") from None
    return found


def load_cifar10(data_dir=None, *, verify: bool = True) -> Dataset:
    """CIFAR-10 from ``<data_dir>/cifar10/`` (the official python version).

    Reads ``cifar-10-batches-py/`` if it exists, else ``cifar-10-python.tar.gz``
    directly (no extraction needed). With ``verify`` (default) each batch's md5
    must equal the official one before it is unpickled.

    Returns
    -------
    Dataset
        ``x: (N, 3, 32, 32)`` uint8, 50000 train (batches 1..5 in order) and
        10000 test images; ``y: (N,)`` int64; classes from ``batches.meta``.
    """
    folder = resolve_data_dir(data_dir, "cifar10") / sources.REMOTE["cifar10"].folder
    source = find_first(folder, (BATCH_FOLDER, sources.CIFAR10_ARCHIVE.name), "cifar10")
    blobs = read_batch_files(source, TRAIN_BATCHES + (TEST_BATCH, META))
    if verify:
        for spec in sources.CIFAR10_BATCHES + (sources.CIFAR10_META,):
            if spec.name in blobs:
                sources.verify(blobs[spec.name], spec, f"{source}:{spec.name}",
                               dataset="cifar10")
    train = [decode_batch(blobs[name], f"{source}:{name}") for name in TRAIN_BATCHES]
    x_test, y_test = decode_batch(blobs[TEST_BATCH], f"{source}:{TEST_BATCH}")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Dataset(x_train, y_train, x_test, y_test, _class_names(blobs, source),
                   "cifar10")


def _class_names(blobs: dict, source) -> tuple:
    """The ``label_names`` of ``batches.meta``, or the standard ten if absent."""
    if META not in blobs:
        return CIFAR10_CLASSES
    names = unpickle_batch(blobs[META], f"{source}:{META}").get("label_names")
    if not names or len(names) != 10:
        raise DataError(f"{source}:{META}: expected 10 label_names, got {names!r}")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
