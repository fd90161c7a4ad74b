"""The output folder of a run, checked before any data is loaded or model built.

:func:`check_output_folder` makes sure ``--out`` is (or can become) a folder
that this process may write into; :func:`prepare_run_folder` adds the rules of a
training run: an earlier checkpoint is neither overwritten by accident nor
silently ignored, and temporary checkpoint files left by a process killed while
writing (``.checkpoint.npz.*.tmp``) are removed.

Introduced in ``README.md``.
"""
from __future__ import annotations

import glob
import os
import tempfile

from lars_ref.checkpoint import checkpoint_path, temporary_names
from lars_ref.config import ConfigError


def check_output_folder(path: str, flag: str = "--out") -> None:
    """Create ``path`` if needed and check it is a folder we can write into.

    Raises
    ------
    ConfigError
        ``path`` is a file, lies under a file, or cannot be created or written.
    """
    blocking = _file_in_the_way(path)
    if blocking == os.path.abspath(path):
        raise ConfigError(f"{flag} {path} is a file, not a folder; give a folder "
                          "name (it is created if needed)")
    if blocking is not None:
        raise ConfigError(f"{flag} {path} lies under {blocking}, which is a file; "
                          f"pick another {flag}")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ConfigError(f"cannot write into {flag} {path} ({err.strerror or err}); "
                          f"pick a folder you can write to") from None


def _file_in_the_way(path: str) -> str | None:
    """``path`` or its nearest existing ancestor, if that is not a folder; else None."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    return None if os.path.isdir(current) else current


def prepare_run_folder(out: str, *, resume: bool, overwrite: bool) -> list[str]:
    """Check ``--out`` for a training run; remove stale temporary checkpoint files.

    Returns the removed file names. Raises ConfigError when ``out`` holds the
    checkpoint of an earlier run and neither ``resume`` nor ``overwrite`` is set.
    """
    check_output_folder(out)
    existing = checkpoint_path(out)
    if not resume and not overwrite and os.path.exists(existing):
        raise ConfigError(f"{existing} holds the checkpoint of an earlier run; "
                          "continue it with --resume, start over with --overwrite, "
                          "or pick another --out")
    stale = sorted(glob.glob(os.path.join(out, temporary_names(existing))))
    for path in stale:
        os.unlink(path)
    return [os.path.basename(path) for path in stale]
