"""Loaders on small files written here in the official formats: exact pixels and labels.

The writers below follow the published format descriptions (IDX: yann.lecun.com;
CIFAR-10 python batches: cs.toronto.edu/~kriz/cifar.html), independently of
the library's readers.
"""
import gzip
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from lars_ref.data import DataError, load_dataset


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 0, 0, type 0x08 (ubyte), ndim, then each size as big-endian uint32."""
    header = bytes([0, 0, 0x08, array.ndim])
    sizes = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + sizes + array.astype(np.uint8).tobytes()


def write_idx_set(folder, rng, n_train=5, n_test=3, rows=4, cols=3, gz=(True, False)):
    """Write MNIST-named IDX files (train gzipped, test raw by default)."""
    folder.mkdir(parents=True)
    arrays = {}
    for prefix, n, zipped in (("train", n_train, gz[0]), ("t10k", n_test, gz[1])):
        images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name, blob = f"{prefix}-{kind}-ubyte", idx_bytes(array)
            if zipped:
                name, blob = name + ".gz", gzip.compress(blob)
            (folder / name).write_bytes(blob)
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("name, folder", [("mnist", "mnist"),
                                          ("fashion_mnist", "fashion-mnist")])
def test_idx_gz_and_raw_load_exact_values(tmp_path, rng, name, folder):
    written = write_idx_set(tmp_path / folder, rng)
    data = load_dataset(name, tmp_path, verify=False)
    assert data.x_train.shape == (5, 1, 4, 3) and data.x_train.dtype == np.uint8
    np.testing.assert_array_equal(data.x_train[:, 0], written["train"][0])
    np.testing.assert_array_equal(data.x_test[:, 0], written["t10k"][0])
    assert data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.y_train, written["train"][1])
    np.testing.assert_array_equal(data.y_test, written["t10k"][1])
    assert len(data.classes) == 10 and data.name == name


def test_idx_env_variable_gives_data_dir(tmp_path, rng, monkeypatch):
    written = write_idx_set(tmp_path / "mnist", rng, gz=(False, True))
    monkeypatch.setenv("LARS_REF_DATA", str(tmp_path))
    data = load_dataset("mnist", verify=False)
    np.testing.assert_array_equal(data.y_test, written["t10k"][1])


def cifar_batch(rng, n, label_offset=0):
    """One batch dict as the official pickles hold it (bytes keys, rows R|G|B)."""
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [(label_offset + i) % 10 for i in range(n)]
    return {b"batch_label": b"test batch", b"labels": labels, b"data": data,
            b"filenames": [b"x.png"] * n}


def expected_nchw(data: np.ndarray) -> np.ndarray:
    """Pixel (n, c, i, j) = row n, entry c*1024 + i*32 + j, by explicit loops."""
    out = np.empty((len(data), 3, 32, 32), dtype=np.uint8)
    for n in range(len(data)):
        for c in range(3):
            for i in range(32):
                out[n, c, i, :] = data[n, c * 1024 + i * 32: c * 1024 + i * 32 + 32]
    return out


def dumps(obj, protocol):
    """Pickle ``obj``; "numpy1" names NumPy's core "numpy.core", as the official
    CIFAR files (written with NumPy 1) do; NumPy 2 writes "numpy._core"."""
    if protocol == "numpy1":
        return pickle.dumps(obj, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    return pickle.dumps(obj, protocol=protocol)


def write_cifar(tmp_path, rng, as_tar, protocol=2):
    batches = {f"data_batch_{i}": cifar_batch(rng, 2, i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, 3, 7)
    names = [f"class{k}".encode() for k in range(10)]
    files = {name: dumps(b, protocol) for name, b in batches.items()}
    files["batches.meta"] = dumps({b"label_names": names}, protocol)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    if as_tar:
        archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return batches


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar.gz"])
@pytest.mark.parametrize("protocol", [2, 5, "numpy1"])
def test_cifar10_batches_load_exact_values(tmp_path, rng, as_tar, protocol):
    batches = write_cifar(tmp_path, rng, as_tar, protocol)
    data = load_dataset("cifar10", tmp_path, verify=False)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(
        data.x_train, np.concatenate([expected_nchw(b[b"data"]) for b in train]))
    np.testing.assert_array_equal(data.y_train, sum((b[b"labels"] for b in train), []))
    test_pixels = batches["test_batch"][b"data"]
    np.testing.assert_array_equal(data.x_test, expected_nchw(test_pixels))
    assert data.y_test.tolist() == [7, 8, 9] and data.y_train.dtype == np.int64
    assert data.classes == tuple(f"class{k}" for k in range(10))


def write_image_folder(root, rng, grayscale=False, suffix=".png"):
    """root/<split>/<class>/<name>: 2 classes, names chosen to test sorting."""
    expected = {}
    for split, names in (("train", ["b.png", "a.png", "c.png"]), ("test", ["z.png"])):
        images, labels = [], []
        for label, class_name in enumerate(["cat", "dog"]):  # sorted class order
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for name in sorted(names):
                shape = (5, 4) if grayscale else (5, 4, 3)
                pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / name.replace(".png", suffix))
                images.append(pixels.reshape(5, 4, -1).transpose(2, 0, 1))
                labels.append(label)
        expected[split] = (np.stack(images), np.array(labels))
    return expected


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar"])
@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "gray"])
def test_image_folder_loads_exact_pixels(tmp_path, rng, as_tar, grayscale):
    root = tmp_path / "images"
    expected = write_image_folder(root, rng, grayscale)
    source = root
    if as_tar:  # members "images/train/cat/a.png": a top-level prefix is allowed
        source = tmp_path / "images.tar"
        with tarfile.open(source, "w") as tar:
            tar.add(root, arcname="images")
    data = load_dataset("image_folder", source, grayscale=grayscale, use_cache=False)
    np.testing.assert_array_equal(data.x_train, expected["train"][0])
    np.testing.assert_array_equal(data.y_train, expected["train"][1])
    np.testing.assert_array_equal(data.x_test, expected["test"][0])
    np.testing.assert_array_equal(data.y_test, expected["test"][1])
    assert data.classes == ("cat", "dog")
    assert data.x_train.shape == ((6, 1, 5, 4) if grayscale else (6, 3, 5, 4))


def test_image_folder_jpeg_matches_pillow_decode(tmp_path, rng):
    write_image_folder(tmp_path / "jpg", rng, suffix=".jpg")
    data = load_dataset("image_folder", tmp_path / "jpg", use_cache=False)
    with Image.open(tmp_path / "jpg" / "train" / "cat" / "a.jpg") as image:
        first = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(data.x_train[0], first.transpose(2, 0, 1))


def test_image_folder_mixed_sizes_is_a_data_error(tmp_path, rng):
    write_image_folder(tmp_path / "img", rng)
    odd_one = Image.fromarray(np.zeros((7, 7, 3), np.uint8))
    odd_one.save(tmp_path / "img" / "train" / "dog" / "d.png")
    with pytest.raises(DataError, match="resize all images"):
        load_dataset("image_folder", tmp_path / "img", use_cache=False)


def test_digits_split_is_fixed_stratified_and_documented():
    data = load_dataset("digits")
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_test.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 16
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(10, 36))
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_test, data.x_test)
    from sklearn.datasets import load_digits
    bunch = load_digits()  # every image lands in exactly one split
    assert len(data.y_train) + len(data.y_test) == len(bunch.target)
    np.testing.assert_array_equal(np.sort(np.concatenate([data.y_train, data.y_test])),
                                  np.sort(bunch.target))
