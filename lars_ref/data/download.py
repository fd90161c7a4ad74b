"""Fetch the official dataset files, checked by hash, on a machine that is online.

``download("mnist", "~/data")`` puts the four MNIST files into ``~/data/mnist/``;
``fashion_mnist`` and ``cifar10`` work the same way (folders in
:mod:`lars_ref.data.sources`). Each file is streamed into a temporary file in
the target folder, checked (size and content hash, see
:func:`lars_ref.data.sources.verify`), and only then renamed to its final name
(``os.replace``): a failed, truncated or corrupt download never leaves a file
that a loader could pick up. Mirrors are tried in order; ``base_url`` replaces
them (a private mirror, or a local test server).

Introduced in ``README.md``.
"""
from __future__ import annotations

import http.client
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from lars_ref.data import sources
from lars_ref.data.datasets import DATA_ENV
from lars_ref.data.errors import DataError

CHUNK_BYTES = 1 << 20


def download(name: str, data_dir=None, *, base_url: str | None = None,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Download (or re-check) every official file of dataset ``name``.

    Parameters
    ----------
    name : "mnist", "fashion_mnist" or "cifar10"
    data_dir : the data directory (default ``$LARS_REF_DATA``); created if needed
    base_url : fetch ``base_url + file_name`` instead of the official mirrors
    timeout : seconds to wait for a connection or a read
    progress : print one line per file on stderr

    Returns
    -------
    pathlib.Path
        The dataset folder, e.g. ``<data_dir>/mnist``.

    Raises
    ------
    DataError
        Unknown name, no data directory, or no mirror gave a valid file.
    """
    if name not in sources.REMOTE:
        raise DataError(f"cannot download {name!r}; downloadable datasets: "
                        f"{', '.join(sources.REMOTE)} (digits ships with scikit-learn; "
                        "copy image folders such as cifar10_jpg by hand)")
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not data_dir:
        raise DataError(f"download {name}: pass data_dir=... (--data-dir) or set "
                        f"{DATA_ENV} to the folder that should hold the datasets")
    remote = sources.REMOTE[name]
    folder = Path(data_dir).expanduser() / remote.folder
    folder.mkdir(parents=True, exist_ok=True)
    mirrors = (base_url,) if base_url else remote.mirrors
    for spec in remote.files:
        dest = folder / spec.name
        if _is_valid(dest, spec, name):
            _say(progress, f"{dest} is present and verified")
            continue
        fetch_file(spec, [m if m.endswith("/") else m + "/" for m in mirrors], dest,
                   dataset=name, timeout=timeout, progress=progress)
    return folder


def fetch_file(spec: sources.FileSpec, mirrors, dest: Path, *, dataset: str,
               timeout: float = 60.0, progress: bool = False) -> Path:
    """Fetch ``mirror + spec.name`` from the first mirror that gives a valid file.

    Raises
    ------
    DataError
        Every mirror failed; the message lists each URL with its reason.
    """
    failures = []
    for mirror in mirrors:
        url = mirror + spec.name
        _say(progress, f"downloading {url} -> {dest}")
        try:
            _fetch_verified(url, Path(dest), spec, dataset, timeout)
            return Path(dest)
        except (DataError, OSError, http.client.HTTPException) as err:
            kind = "" if isinstance(err, DataError) else f"{type(err).__name__}: "
            failures.append(f"{url}: {kind}{err}")
            _say(progress, f"  failed: {failures[-1]}")
    raise DataError(f"could not get a valid {spec.name} for {dataset} (nothing was "
                    f"saved): {'; '.join(failures)}")


def _fetch_verified(url: str, dest: Path, spec, dataset: str, timeout: float) -> None:
    """Stream ``url`` to a temporary file beside ``dest``, verify, then rename."""
    partial = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.",
                                          suffix=".part", delete=False)
    try:
        with partial:
            _copy_url(url, partial, timeout)
        sources.verify(Path(partial.name).read_bytes(), spec, url, dataset=dataset)
        os.replace(partial.name, dest)
    finally:
        Path(partial.name).unlink(missing_ok=True)  # gone already after a rename


def _copy_url(url: str, out, timeout: float) -> None:
    """Copy the body of ``url`` into the binary file ``out``; check its length."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        received = 0
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
    if announced is not None and received != int(announced):
        raise DataError(f"truncated transfer: {received:,} of {int(announced):,} bytes")


def _is_valid(path: Path, spec, dataset: str) -> bool:
    """True if ``path`` exists and passes :func:`sources.verify`."""
    if not path.is_file():
        return False
    try:
        sources.verify(path.read_bytes(), spec, path, dataset=dataset)
        return True
    except DataError:
        return False


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)


def register(commands) -> None:
    """Add ``download`` to the ``lars-ref`` command tree (argparse subparsers)."""
    parser = commands.add_parser(
        "download", help="fetch a dataset (hash-checked) into the data folder",
        description=("Download the official files of a dataset and check their "
                     "hashes.\n\nexample:  lars-ref download mnist --data-dir ~/data"))
    parser.add_argument("name", help="dataset name: " + ", ".join(sources.REMOTE))
    parser.add_argument("--data-dir", help="target folder (default: $LARS_REF_DATA)")
    parser.set_defaults(handler=_run_download_command)


def _run_download_command(args) -> int:
    path = download(args.name, data_dir=args.data_dir)
    print(f"{args.name} is in {path}")
    return 0
