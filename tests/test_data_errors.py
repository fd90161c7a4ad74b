"""Bad input: every problem is a DataError whose message names the fix."""
import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from lars_ref.data import DataError, dataset_names, load_dataset


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim])
    return header + b"".join(int(n).to_bytes(4, "big") for n in array.shape) + \
        array.astype(np.uint8).tobytes()


def write_mnist(folder, labels_train=None, images_train=None):
    """A tiny valid MNIST-named set; either training file may be replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.zeros((2, 3, 3), np.uint8)
    labels = np.array([1, 2], np.uint8)
    files = {"train-images-idx3-ubyte": images_train or idx_bytes(images),
             "train-labels-idx1-ubyte": labels_train or idx_bytes(labels),
             "t10k-images-idx3-ubyte": idx_bytes(images),
             "t10k-labels-idx1-ubyte": idx_bytes(labels)}
    for name, blob in files.items():
        (folder / name).write_bytes(blob)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DataError) as info:
        load_dataset("imagenet")
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "cifar10_jpg",
                 "image_folder"):
        assert name in str(info.value) and name in dataset_names()


def test_no_data_dir_says_set_the_variable(monkeypatch):
    monkeypatch.delenv("LARS_REF_DATA", raising=False)
    with pytest.raises(DataError, match="LARS_REF_DATA.*lars-ref download mnist"):
        load_dataset("mnist")


def test_missing_dir_and_missing_files_say_download(tmp_path):
    with pytest.raises(DataError, match="does not exist.*lars-ref download cifar10"):
        load_dataset("cifar10", tmp_path / "nowhere")
    with pytest.raises(DataError, match="lars-ref download mnist"):
        load_dataset("mnist", tmp_path)  # no mnist/ folder inside
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*lars-ref download"):
        load_dataset("mnist", tmp_path)


def test_idx_wrong_magic_is_named(tmp_path):
    labels_with_image_magic = idx_bytes(np.zeros((2, 1, 1), np.uint8))
    write_mnist(tmp_path / "mnist", labels_train=labels_with_image_magic)
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        load_dataset("mnist", tmp_path, verify=False)


def test_idx_truncated_content_is_named(tmp_path):
    truncated = idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1]
    write_mnist(tmp_path / "mnist", images_train=truncated)
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset("mnist", tmp_path, verify=False)


def test_truncated_gzip_is_named(tmp_path):
    write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    blob = gzip.compress(path.read_bytes())
    path.unlink()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(blob[:-6])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        load_dataset("mnist", tmp_path, verify=False)


def test_labels_out_of_range_are_named(tmp_path):
    write_mnist(tmp_path / "mnist", labels_train=idx_bytes(np.array([1, 10], np.uint8)))
    with pytest.raises(DataError, match="labels span 1..10"):
        load_dataset("mnist", tmp_path, verify=False)


def test_verify_refuses_a_file_of_the_wrong_size(tmp_path):
    write_mnist(tmp_path / "mnist")
    with pytest.raises(DataError, match="expected 47,040,016.*verify=False"):
        load_dataset("mnist", tmp_path)


def test_verify_refuses_right_size_wrong_hash(tmp_path):
    fake_labels = idx_bytes(np.zeros(60000, np.uint8))  # 60,008 bytes, as the real one
    write_mnist(tmp_path / "mnist", labels_train=fake_labels,
                images_train=idx_bytes(np.zeros((60000, 28, 28), np.uint8)))
    with pytest.raises(DataError, match="hash does not match.*lars-ref download"):
        load_dataset("mnist", tmp_path)


def test_cifar_pickle_with_foreign_global_is_refused_unrun(tmp_path):
    marker = tmp_path / "was_run"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DataError, match="not a readable CIFAR batch"):
        load_dataset("cifar10", tmp_path, verify=False)
    assert not marker.exists()


def test_cifar_verify_refuses_unofficial_batches(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="data_batch_1: hash does not match"):
        load_dataset("cifar10", tmp_path)


def test_truncated_cifar_archive_is_named(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    (tmp_path / "cifar10").mkdir()
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.write_bytes(buffer.getvalue()[:-20])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", tmp_path, verify=False)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("image_folder")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("image_folder", tmp_path / "nope")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no images under train"):
        load_dataset("image_folder", tmp_path / "empty", use_cache=False)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(DataError, match="not a tar archive"):
        load_dataset("image_folder", tmp_path / "junk.tar", use_cache=False)
    bad = tmp_path / "bad" / "train" / "cat"
    bad.mkdir(parents=True)
    (bad / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="a.png: cannot decode"):
        load_dataset("image_folder", tmp_path / "bad", use_cache=False)


def test_cifar10_jpg_missing_says_copy_by_hand(tmp_path):
    with pytest.raises(DataError, match="cifar10-jpg by hand.*cannot download"):
        load_dataset("cifar10_jpg", tmp_path)
