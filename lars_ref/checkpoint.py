"""Atomic checkpoints: everything a run needs to continue bit for bit.

A checkpoint is one ``.npz`` file (NumPy's zip of arrays, read with
``allow_pickle=False``, so loading never runs code). Nested state dictionaries
-- the model's parameters and BN buffers, the optimizer's momentum buffers and
step ``t``, the data iterator's position and RNG states, the metrics so far --
are split into two parts:

* every array leaf is stored as its own ``.npy`` member under its dotted path,
  e.g. ``model/conv1.w`` or ``optimizer/v/fc8.b``;
* everything else (ints, floats, strings, lists, ``Generator.bit_generator.state``)
  goes into one JSON document, the member ``__tree__``, with a placeholder
  ``{"__array__": "model/conv1.w"}`` where each array was.

The write is atomic (:func:`save_checkpoint`): the file is written under a
temporary name in the same directory, flushed and ``fsync``-ed, then renamed
over the old one with ``os.replace``. A process killed at any moment leaves
either the previous checkpoint or the new one, never a torn file.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from lars_ref.backend import to_numpy
from lars_ref.errors import UserError

FORMAT_VERSION = 1
_TREE_KEY = "__tree__"
CHECKPOINT_NAME = "checkpoint.npz"


def checkpoint_path(out_dir: str) -> str:
    """``<out_dir>/checkpoint.npz``, the checkpoint of the run in ``out_dir``."""
    return os.path.join(out_dir, CHECKPOINT_NAME)


def temporary_names(path) -> str:
    """Glob pattern of the temporary files that :func:`save_checkpoint` writes."""
    return f".{os.path.basename(os.fspath(path))}.*.tmp"


class CheckpointError(UserError):
    """A checkpoint file is missing, corrupt, or does not fit the current run."""


class CheckpointWriteError(CheckpointError, OSError):
    """The file system refused a checkpoint write (e.g. no space left on the device)."""


# ----------------------------------------------------------------------------------
# Nested state  <->  (JSON tree, flat dict of arrays)
# ----------------------------------------------------------------------------------
def _split_arrays(node, path: str, arrays: dict):
    """Return a JSON-able copy of ``node``; move every array leaf into ``arrays``."""
    if isinstance(node, dict):
        for key in node:
            if not isinstance(key, str):
                raise TypeError(f"checkpoint keys must be str, got {key!r} at {path!r}")
        return {key: _split_arrays(value, f"{path}/{key}" if path else key, arrays)
                for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_split_arrays(value, f"{path}/{i}", arrays)
                for i, value in enumerate(node)]
    if isinstance(node, np.generic):  # a NumPy scalar keeps its exact dtype
        arrays[path] = np.asarray(node)
        return {"__scalar__": path}
    if isinstance(node, (bool, int, float, str)) or node is None:
        return node
    if hasattr(node, "shape") and hasattr(node, "dtype"):  # NumPy or CuPy array
        arrays[path] = to_numpy(node)
        return {"__array__": path}
    raise TypeError(f"cannot store {type(node).__name__} at {path!r} in a checkpoint")


def _join_arrays(node, arrays):
    """Inverse of :func:`_split_arrays`: put the arrays back into the tree."""
    if isinstance(node, dict):
        if set(node) == {"__array__"}:
            return arrays[node["__array__"]]
        if set(node) == {"__scalar__"}:
            return arrays[node["__scalar__"]][()]
        return {key: _join_arrays(value, arrays) for key, value in node.items()}
    if isinstance(node, list):
        return [_join_arrays(value, arrays) for value in node]
    return node


# ----------------------------------------------------------------------------------
# Atomic write and checked read
# ----------------------------------------------------------------------------------
def _encode(state: dict) -> dict:
    """Return the flat ``{member name: array}`` dict that ``np.savez`` writes."""
    arrays: dict[str, np.ndarray] = {}
    tree = {"format_version": FORMAT_VERSION, "state": _split_arrays(state, "", arrays)}
    tree_bytes = json.dumps(tree).encode("utf-8")  # keeps dict order (metric columns)
    arrays[_TREE_KEY] = np.frombuffer(tree_bytes, dtype=np.uint8)
    return arrays


def save_checkpoint(path, state: dict) -> str:
    """Write ``state`` to ``path`` atomically (temp file, flush, fsync, ``os.replace``).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, conventionally ``<out>/checkpoint.npz``.
    state : dict
        Nested dicts/lists of str keys whose leaves are arrays (host or device;
        device arrays are copied to the host), NumPy scalars, or JSON values.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    CheckpointError
        When the file system refuses the write (e.g. no space left); the
        previous file at ``path`` is untouched and no temporary file is left.
    """
    path = os.fspath(path)
    arrays = _encode(state)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                    suffix=".tmp", dir=directory)  # temporary_names
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the rename
        os.replace(tmp_path, path)  # atomic on POSIX and Windows
    except BaseException as err:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        if isinstance(err, OSError):  # disk full, quota, read-only file system
            raise CheckpointWriteError(
                f"cannot write the checkpoint {path} ({err.strerror or err}); the "
                "previous checkpoint is kept. Free some space (or pick another --out) "
                "and continue with --resume") from None
        raise
    _fsync_directory(directory)  # make the rename itself durable
    return path


def _fsync_directory(directory: str) -> None:
    """fsync a directory entry where the OS allows it (POSIX); no-op elsewhere."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; return the nested state.

    Raises
    ------
    CheckpointError
        When the file is missing, truncated, corrupt, or of another format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path!r}; train without --resume "
                              "first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        tree = json.loads(bytes(arrays.pop(_TREE_KEY)).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not a lars-ref "
                              f"checkpoint ({type(err).__name__}: {err}); delete it "
                              "or point --out elsewhere") from None
    if tree.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version "
                              f"{tree.get('format_version')!r}, this lars-ref reads "
                              f"version {FORMAT_VERSION}")
    return _join_arrays(tree["state"], arrays)


# ----------------------------------------------------------------------------------
# Compatibility check before resuming
# ----------------------------------------------------------------------------------
def describe_arrays(state_dict: dict) -> dict:
    """Map each array name of a flat state dict to ``[dtype, shape]`` (JSON-able)."""
    return {name: [str(np.dtype(a.dtype)), list(a.shape)]
            for name, a in state_dict.items()}


def check_compatible(saved_meta: dict, current_meta: dict, path: str = "checkpoint"):
    """Raise :class:`CheckpointError` listing every way two run descriptions differ.

    Parameters
    ----------
    saved_meta, current_meta : dict
        Flat JSON-able descriptions of a run (model name, optimizer, batch size,
        and ``"arrays"``: name -> [dtype, shape] from :func:`describe_arrays`).
    """
    differences = []
    for key in sorted(set(saved_meta) | set(current_meta)):
        if key == "arrays":
            continue
        saved, current = saved_meta.get(key), current_meta.get(key)
        if saved != current:
            differences.append(f"{key}: checkpoint has {saved!r}, "
                               f"this run has {current!r}")
    saved_arrays = saved_meta.get("arrays", {})
    current_arrays = current_meta.get("arrays", {})
    missing = [n for n in current_arrays if n not in saved_arrays]
    extra = [n for n in saved_arrays if n not in current_arrays]
    if missing:
        differences.append("tensors missing from the checkpoint: "
                           + ", ".join(missing[:5]))
    if extra:
        differences.append(f"tensors not in this model: {', '.join(extra[:5])}")
    for name in current_arrays:
        if name not in saved_arrays:
            continue
        saved_dtype, saved_shape = saved_arrays[name]
        dtype, shape = current_arrays[name]
        if [saved_dtype, list(saved_shape)] != [dtype, list(shape)]:
            differences.append(f"tensor {name}: checkpoint has {saved_dtype} "
                               f"{tuple(saved_shape)}, this model has {dtype} "
                               f"{tuple(shape)}")
    if differences:
        raise CheckpointError(f"cannot resume from {path}: " + "; ".join(differences)
                              + ". Use the same settings, or a new --out directory.")
