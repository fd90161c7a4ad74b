"""A cache of decoded arrays as ``.npz`` files, written atomically.

Decoding tens of thousands of small JPEG/PNG files takes seconds to minutes;
loading the same arrays from one ``.npz`` takes well under a second. A cache
entry is keyed by a *fingerprint* of the source (path, size and modification
time of the archive, or of every file of a folder) plus the loader's options,
so editing or replacing the source makes a new entry instead of serving stale
arrays.

Entries go into the cache directory only: ``cache_dir`` when a caller passes
one, else ``$LARS_REF_CACHE``, else ``~/.cache/lars_ref``. A data folder is never
written to on our own (it may be shared, backed up, or under version control); a
user who wants the cache beside the data sets ``LARS_REF_CACHE`` to that folder.
Each entry is written to a temporary file in the cache folder and renamed with
``os.replace``, so a crash never leaves a half-written entry under the real name.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

CACHE_ENV = "LARS_REF_CACHE"
CACHE_FORMAT = 1  # bump when the cached arrays change meaning


def default_cache_dir() -> Path:
    """``$LARS_REF_CACHE``, or ``~/.cache/lars_ref``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lars_ref")


def fingerprint(source: Path, options: str) -> str:
    """A hex key for ``source`` (a file or a folder) and the loader options.

    A file is described by its resolved path, size and mtime (nanoseconds); a
    folder by the same three facts for every file below it, in sorted order.
    """
    source = Path(source).resolve()
    digest = hashlib.sha256(f"format={CACHE_FORMAT}|{options}|{source}".encode())
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*")
                                                     if p.is_file())
    for path in files:
        stat = path.stat()
        digest.update(f"|{path.relative_to(source.parent)}|{stat.st_size}|"
                      f"{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def entry_paths(source: Path, key: str, cache_dir=None) -> list[Path]:
    """Where the entry for ``source`` lives: one path in the cache directory."""
    source = Path(source).resolve()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return [cache_dir.expanduser() / f"{source.name}-{key}.npz"]


def load_entry(paths, keys) -> dict | None:
    """Return the arrays of the first readable entry holding ``keys``, or None.

    A damaged entry (truncated, not a zip) is skipped with a warning.
    """
    for path in paths:
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in keys}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            warnings.warn(f"ignoring damaged cache file {path}: {err}", stacklevel=2)
    return None


def save_entry(paths, arrays: dict) -> Path | None:
    """Write ``arrays`` to the first writable path; return it (None: none was).

    Each attempt writes a temporary file in the target folder and renames it
    over the final name (atomic on POSIX and Windows).
    """
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not is_writable_dir(path.parent):
                continue
            _atomic_savez(path, arrays)
            return path
        except OSError:
            continue  # not allowed, or disk full: try the next place
    warnings.warn(f"could not write a cache file to any of {[str(p) for p in paths]}; "
                  f"set {CACHE_ENV} to a writable folder", stacklevel=2)
    return None


def is_writable_dir(folder: Path) -> bool:
    """True if we may write into ``folder``.

    Besides ``os.access``, a folder whose permission bits grant nobody write
    access (``r-x``) counts as read-only, even for root, who could write anyway:
    a shared, read-only data folder must stay untouched.
    """
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _atomic_savez(path: Path, arrays: dict) -> None:
    """``numpy.savez`` to a temporary file beside ``path``, then rename."""
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            np.savez(handle, **arrays)
        os.chmod(handle.name, 0o644)  # readable by all, like the data beside it
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
