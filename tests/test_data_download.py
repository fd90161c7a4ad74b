"""Downloads from a local HTTP server on 127.0.0.1: good, corrupt, truncated, re-zipped.

The server runs in a daemon thread for one test, serves a temporary folder,
and is shut down by the fixture; every request has a short timeout.
"""
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from lars_ref.data import DataError, download, load_dataset, sources
from lars_ref.data.download import fetch_file
from lars_ref.data.sources import FileSpec, RemoteDataset


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; under /cut/ it announces the full length but sends half."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        body = (Path(self.directory) / self.path[len("/cut/"):]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.close_connection = True


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL); stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True,
                              kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def idx_labels(values) -> bytes:
    array = np.asarray(values, np.uint8)
    return bytes([0, 0, 8, 1]) + len(array).to_bytes(4, "big") + array.tobytes()


def spec_for(name, content: bytes, published: bytes | None = None) -> FileSpec:
    """A FileSpec from hashes computed here with hashlib (the test's own oracle)."""
    archive_md5 = hashlib.md5(published).hexdigest() if published else None
    return FileSpec(name, len(content), hashlib.sha256(content).hexdigest(),
                    hashlib.md5(content).hexdigest(), archive_md5)


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def test_good_file_is_saved_from_the_first_mirror_that_has_it(server, tmp_path):
    root, url = server
    content = idx_labels([3, 1, 4])
    (root / "labels.gz").write_bytes(gzip.compress(content))
    dest_dir = tmp_path / "data"
    dest_dir.mkdir()
    fetch_file(spec_for("labels.gz", content), [url + "no-such-mirror/", url],
               dest_dir / "labels.gz", dataset="toy", timeout=5)
    assert gzip.decompress((dest_dir / "labels.gz").read_bytes()) == content
    assert leftovers(dest_dir) == ["labels.gz"]


@pytest.mark.parametrize("damage, reason", [
    ("flipped byte", "corrupt or truncated gzip"),
    ("truncated file", "corrupt or truncated gzip"),
    ("cut transfer", "truncated transfer"),
    ("missing file", "404"),
])
def test_bad_download_raises_and_leaves_nothing(server, tmp_path, damage, reason):
    root, url = server
    content = idx_labels(range(10)) * 50
    blob = gzip.compress(content)
    served = {"flipped byte": blob[:20] + bytes([blob[20] ^ 0xFF]) + blob[21:],
              "truncated file": blob[:len(blob) // 2], "cut transfer": blob}.get(damage)
    if served is not None:
        (root / "f.gz").write_bytes(served)
    base = url + "cut/" if damage == "cut transfer" else url
    dest_dir = tmp_path / "data"
    dest_dir.mkdir()
    with pytest.raises(DataError, match="could not get a valid f.gz.*nothing was saved"
                       f".*{reason}"):
        fetch_file(spec_for("f.gz", content), [base], dest_dir / "f.gz", dataset="toy",
                   timeout=5)
    assert leftovers(dest_dir) == []


def test_regzipped_identical_content_passes_by_content_hash(server, tmp_path):
    root, url = server
    content = idx_labels(range(10)) * 50
    published = gzip.compress(content, compresslevel=9, mtime=0)
    rewrapped = gzip.compress(content, compresslevel=1, mtime=12345)
    assert rewrapped != published
    (root / "f.gz").write_bytes(rewrapped)
    dest_dir = tmp_path / "data"
    dest_dir.mkdir()
    fetch_file(spec_for("f.gz", content, published), [url], dest_dir / "f.gz",
               dataset="toy", timeout=5)
    assert (dest_dir / "f.gz").read_bytes() == rewrapped
    # With only the archive md5 known (like Fashion-MNIST), a re-gzipped copy fails:
    only_md5 = FileSpec("f.gz", archive_md5=hashlib.md5(published).hexdigest())
    (dest_dir / "f.gz").unlink()
    with pytest.raises(DataError, match="hash does not match"):
        fetch_file(only_md5, [url], dest_dir / "f.gz", dataset="toy", timeout=5)


def test_download_then_load_round_trip(server, tmp_path, monkeypatch, capsys):
    root, url = server
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 3, 3))
    files = {"train-images-idx3-ubyte.gz": header + images.tobytes(),
             "train-labels-idx1-ubyte.gz": idx_labels([7, 2]),
             "t10k-images-idx3-ubyte.gz": header + images.tobytes(),
             "t10k-labels-idx1-ubyte.gz": idx_labels([0, 9])}
    for name, content in files.items():
        (root / name).write_bytes(gzip.compress(content))
    specs = tuple(spec_for(name, content) for name, content in files.items())
    monkeypatch.setitem(sources.REMOTE, "mnist",
                        RemoteDataset("mnist", ("http://unused.invalid/",), specs))
    folder = download("mnist", tmp_path / "data", base_url=url, timeout=5)
    assert folder == tmp_path / "data" / "mnist"
    data = load_dataset("mnist", tmp_path / "data")  # verify=True, against the specs
    np.testing.assert_array_equal(data.x_train[:, 0], images)
    assert data.y_test.tolist() == [0, 9]
    download("mnist", tmp_path / "data", base_url=url, timeout=5)  # again: no fetch
    assert capsys.readouterr().err.count("present and verified") == 4


def test_download_bad_names_and_missing_dir(monkeypatch):
    with pytest.raises(DataError, match="downloadable datasets: mnist, fashion_mnist"):
        download("digits", "/tmp")
    monkeypatch.delenv("LARS_REF_DATA", raising=False)
    with pytest.raises(DataError, match="LARS_REF_DATA"):
        download("mnist")


def real_mnist_folder():
    data_dir = os.environ.get("LARS_REF_DATA")
    folder = Path(data_dir) / "mnist" if data_dir else None
    if folder is None or not (folder / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip("set LARS_REF_DATA to a folder holding mnist/*.gz")
    return folder


def test_real_mnist_regzipped_copy_downloads_with_official_hashes(server, tmp_path):
    source = real_mnist_folder()
    root, url = server
    for spec in sources.MNIST_FILES:
        shutil.copyfile(source / spec.name, root / spec.name)
    folder = download("mnist", tmp_path, base_url=url, timeout=30, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        spec.name for spec in sources.MNIST_FILES)
