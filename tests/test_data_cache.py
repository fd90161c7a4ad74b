"""The .npz cache of decoded image folders: hit, miss on change, never beside the data."""
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from lars_ref.data import DataError, image_folder, load_dataset


def make_tar(tmp_path, rng, name="images.tar"):
    """A .tar of train/test folders with one 3x2 PNG per class."""
    root = tmp_path / "src"
    for split in ("train", "test"):
        for class_name in ("a", "b"):
            (root / split / class_name).mkdir(parents=True)
            pixels = rng.integers(0, 256, size=(3, 2, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / class_name / "0.png")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(data_dir / name, "w") as tar:
        for split in ("train", "test"):
            tar.add(root / split, arcname=split)
    return data_dir / name


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """$LARS_REF_CACHE of every test here: a fresh folder, never the user's cache."""
    monkeypatch.setenv("LARS_REF_CACHE", str(tmp_path / "env_cache"))
    return tmp_path / "env_cache"


@pytest.fixture
def count_decodes(monkeypatch):
    """Count calls of the (slow) decoding step behind the cache."""
    calls = []
    real = image_folder.decode_folder

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(image_folder, "decode_folder", counting)
    return calls


def test_second_load_comes_from_the_cache_dir_not_the_data(tmp_path, rng, count_decodes):
    source = make_tar(tmp_path, rng)
    data_before = sorted(os.listdir(source.parent))
    first = load_dataset("image_folder", source, cache_dir=tmp_path / "cache")
    second = load_dataset("image_folder", source, cache_dir=tmp_path / "cache")
    assert len(count_decodes) == 1
    for a, b in zip(first[:4], second[:4]):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert second.classes == ("a", "b")
    assert sorted(os.listdir(source.parent)) == data_before  # a writable data folder
    assert len(list((tmp_path / "cache").glob("images.tar-*.npz"))) == 1
    assert [p.name for p in (tmp_path / "cache").glob(".*.tmp")] == []  # no temp files


def test_cache_goes_to_lars_ref_cache_by_default(tmp_path, rng, cache_home,
                                                 count_decodes):
    source = make_tar(tmp_path, rng)
    load_dataset("image_folder", source)
    load_dataset("image_folder", source)
    assert len(count_decodes) == 1
    assert list(source.parent.glob("*.npz")) == []
    assert len(list(cache_home.glob("images.tar-*.npz"))) == 1


def test_changed_source_is_decoded_again(tmp_path, rng, count_decodes):
    source = make_tar(tmp_path, rng)
    load_dataset("image_folder", source)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_dataset("image_folder", source)
    assert len(count_decodes) == 2


def test_damaged_cache_file_is_ignored_and_replaced(tmp_path, rng, count_decodes,
                                                    cache_home):
    source = make_tar(tmp_path, rng)
    expected = load_dataset("image_folder", source)
    (entry,) = cache_home.glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged cache file"):
        again = load_dataset("image_folder", source)
    np.testing.assert_array_equal(again.x_train, expected.x_train)
    assert len(count_decodes) == 2


def cifar_jpg_dir(tmp_path, rng):
    folder = tmp_path / "cifar10-jpg"
    folder.mkdir()
    tar_path = make_tar(tmp_path, rng)
    os.replace(tar_path, folder / "CIFAR-10-images.tar")
    return folder


def test_cifar10_jpg_checks_sha256sums_and_shape(tmp_path, rng):
    folder = cifar_jpg_dir(tmp_path, rng)
    (folder / "SHA256SUMS").write_text("0" * 64 + "  CIFAR-10-images.tar\n")
    with pytest.raises(DataError, match="sha256 .* does not match"):
        load_dataset("cifar10_jpg", tmp_path, use_cache=False)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="expected 50000/10000"):
        load_dataset("cifar10_jpg", tmp_path, use_cache=False)
    data = load_dataset("cifar10_jpg", tmp_path, use_cache=False, verify=False)
    assert data.x_train.shape == (2, 3, 3, 2) and data.name == "cifar10_jpg"
