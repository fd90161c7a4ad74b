"""Portable, byte-deterministic storage of reference trajectories.

A reference trajectory is a flat dict ``{key: float64 array}`` written as an
``.npz`` file (a zip of ``.npy`` members, readable by ``numpy.load`` and by any
zip + npy reader in another language). ``numpy.savez`` stamps each member with the
current time, so two runs give different bytes; :func:`write_npz` writes the zip
itself with a fixed date (1980-01-01 00:00:00), no compression and sorted member
names, so regenerating the files gives the same bytes.

Each file is accompanied, in the manifest, by a content hash of its arrays
(:func:`arrays_sha256`), so a reader can tell a tampered or truncated file from a
genuine one independently of how the zip was written. The recipe is simple enough
to re-implement in another language (see docs/crosscheck.md):

    sha256 over the keys in sorted order of
        key (UTF-8) + b"\\0" + dtype.str (e.g. "<f8") + b"\\0"
        + shape as comma-separated decimal (e.g. "6,4,3") + b"\\0"
        + the array's bytes in C order, little-endian

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

FIXED_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip header can hold


class ReferenceFileError(ValueError):
    """A reference file is missing, unreadable or does not match its manifest hash."""


def _little_endian_c_order(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as a C-contiguous little-endian array (a copy if needed)."""
    array = np.asarray(array)
    return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Return the hex sha256 content hash of named arrays (recipe in the module doc).

    Parameters
    ----------
    arrays : dict[str, ndarray]
        Any shapes and dtypes; the hash covers names, dtypes, shapes and values.

    Returns
    -------
    str
        64 hex digits. Independent of dict order and of the zip container.
    """
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = _little_endian_c_order(arrays[key])
        shape_text = ",".join(str(n) for n in array.shape)
        digest.update(key.encode("utf-8") + b"\0")
        digest.update(array.dtype.str.encode("ascii") + b"\0")
        digest.update(shape_text.encode("ascii") + b"\0")
        digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays as an uncompressed ``.npz`` whose bytes depend only on them.

    Parameters
    ----------
    path : str or Path
        Target file; parent directories are created.
    arrays : dict[str, ndarray]
        Member ``key`` is stored as ``key.npy``; keys may contain ``/``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, _little_endian_c_order(arrays[key]),
                                      allow_pickle=False)
            member = zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_ZIP_DATE)
            member.external_attr = 0o644 << 16  # fixed permissions, not the umask's
            archive.writestr(member, buffer.getvalue())


def read_npz(path: str | Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read an ``.npz`` into a dict and, if given, check its content hash.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.
    expected_sha256 : str, optional
        The hash recorded in the manifest. When it differs from
        :func:`arrays_sha256` of what was read, :class:`ReferenceFileError` is
        raised naming the file.

    Returns
    -------
    dict[str, ndarray]
        Every member, loaded eagerly (no pickles allowed).
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceFileError(f"reference file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as err:  # a truncated zip, a corrupt npy header, ...
        raise ReferenceFileError(
            f"reference file {path} cannot be read ({type(err).__name__}: {err}); "
            "regenerate it with `lars-ref vectors --out DIR`") from None
    if expected_sha256 is not None:
        actual = arrays_sha256(arrays)
        if actual != expected_sha256:
            raise ReferenceFileError(
                f"reference file {path} fails its content hash: the manifest records "
                f"sha256 {expected_sha256[:16]}..., the file's arrays hash to "
                f"{actual[:16]}...; the file was modified or belongs to another "
                "version. Regenerate it with `lars-ref vectors --out DIR`.")
    return arrays
