"""The loaders on the real files, when ``LARS_REF_DATA`` points at them (else skipped).

Expected values are published facts about the datasets, not outputs of this
code: MNIST's first labels and class counts (yann.lecun.com/exdb/mnist and
many re-publications), the CIFAR-10 split sizes (cs.toronto.edu/~kriz).
"""
import gzip
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lars_ref.data import DataError, load_dataset

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def data_dir_with(relative: str) -> Path:
    """``$LARS_REF_DATA`` if it holds ``relative``; otherwise skip the test."""
    root = os.environ.get("LARS_REF_DATA")
    if not root or not (Path(root) / relative).exists():
        pytest.skip(f"set LARS_REF_DATA to a folder holding {relative}")
    return Path(root)


def test_mnist_real_files():
    data = load_dataset("mnist", data_dir_with("mnist/train-images-idx3-ubyte.gz"))
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (10000, 1, 28, 28)
    assert data.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert data.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(data.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(data.y_test).tolist() == MNIST_TEST_COUNTS
    assert data.x_train.max() == 255
    assert data.x_train[0, 0, 0].max() == 0  # the top row of a digit is black


def test_mnist_one_changed_label_is_refused(tmp_path):
    source = data_dir_with("mnist/t10k-labels-idx1-ubyte.gz") / "mnist"
    copy = tmp_path / "mnist"
    shutil.copytree(source, copy)
    path = copy / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] = (content[100] + 1) % 10  # one label changed, size unchanged
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match="t10k-labels.*hash does not match"):
        load_dataset("mnist", tmp_path)
    assert load_dataset("mnist", tmp_path, verify=False).y_test[100] == content[108]


def test_cifar10_jpg_real_archive():
    data_dir = data_dir_with("cifar10-jpg/CIFAR-10-images.tar")
    start = time.perf_counter()
    data = load_dataset("cifar10_jpg", data_dir)  # decoded once, then from the cache
    print(f"cifar10_jpg loaded in {time.perf_counter() - start:.1f} s")
    assert data.x_train.shape == (50000, 3, 32, 32) and data.x_test.shape[0] == 10000
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert len(data.classes) == 10 and data.classes[0] == "airplane"
    assert np.bincount(data.y_train).tolist() == [5000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10


def test_cifar10_python_batches_real():
    data = load_dataset("cifar10", data_dir_with("cifar10"))
    assert data.x_train.shape == (50000, 3, 32, 32) and data.x_test.shape[0] == 10000
    assert np.bincount(data.y_train).tolist() == [5000] * 10
