"""Data loaders: the official formats (IDX, CIFAR-10 python batches) written here independently and read back.

Real images: the official Fashion-MNIST files from Debian's dataset-fashion-mnist (CI installs it).
Where that package is missing, the test falls back to the copy in ../shared/data/fashion-mnist (not
the official split; its own README gives the statistics checked) and says so in its output.
"""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_FASHION as SHARED, write_cifar, write_idx

import flatter
from flatter.data import DEBIAN_FOLDER, load_cifar10, load_fashion_mnist, read_idx, stratified_subset


def small_fashion(folder: Path, gz: bool, n_train=30, n_test=10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_fashion_mnist_reads_the_official_idx_format(tmp_path, gz):
    arrays = small_fashion(tmp_path, gz)
    data = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(data.train_images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert data.num_classes == 10 and data.classes[9] == "Ankle boot" and str(tmp_path) in data.source


def test_missing_or_malformed_files_say_what_was_expected_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz .* in .*apt-get install dataset-fashion"):
        load_fashion_mnist(tmp_path)
    small_fashion(tmp_path, gz=True)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28) + b"\x00" * 100))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz is truncated"):
        load_fashion_mnist(tmp_path)
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz is not a readable IDX file"):
        load_fashion_mnist(tmp_path)
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(tmp_path / "x")


def test_fashion_mnist_refuses_images_and_labels_the_official_files_do_not_hold(tmp_path):
    small_fashion(tmp_path, gz=False)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((30, 32, 32)), gz=False)
    with pytest.raises(ValueError, match=r"train images are 28 x 28, got \(32, 32\)"):
        load_fashion_mnist(tmp_path)
    small_fashion(tmp_path, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"  # float labels (IDX type 0x0D)
    labels.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0D, 1, 10) + (np.arange(10) % 10).astype(">f4").tobytes())
    with pytest.raises(ValueError, match=r"test images and labels are uint8 IDX files, got uint8 and float32"):
        load_fashion_mnist(tmp_path)


def test_real_fashion_mnist(capsys):
    if (DEBIAN_FOLDER / "train-images-idx3-ubyte.gz").exists():
        data = load_fashion_mnist()
        assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
        assert np.bincount(data.train_labels).tolist() == [6000] * 10
        assert data.train_images.mean() / 255 == pytest.approx(0.28604, abs=5e-5)  # the official pixel mean
        train, _ = data.normalized()
        assert abs(float(train.mean())) < 1e-3 and float(train.std()) == pytest.approx(1.0, abs=1e-3)
        labels = data.train_labels
    else:  # fallback: the shared copy (70,000 images, no official split)
        with capsys.disabled():
            print(f"\n{DEBIAN_FOLDER} missing: checking the fallback copy {SHARED} instead")
        with np.load(SHARED) as f:
            images, labels = f["images"], f["labels"]
        assert images.shape == (70000, 28, 28) and np.bincount(labels).tolist() == [7000] * 10
        assert images.mean() / 255 == pytest.approx(0.28622, abs=5e-5)
    subset = stratified_subset(labels, 100, seed=0)
    assert np.bincount(labels[subset]).tolist() == [100] * 10
    np.testing.assert_array_equal(subset, stratified_subset(labels, 100, seed=0))  # deterministic
    assert not np.array_equal(subset, stratified_subset(labels, 100, seed=1))


@pytest.mark.parametrize("form", ["archive", "archive's folder", "extracted", "extracted's parent"])
def test_cifar10_reads_the_official_python_version(tmp_path, form):
    batches = write_cifar(tmp_path, archive=form.startswith("archive"))
    path = {
        "archive": tmp_path / "cifar-10-python.tar.gz",
        "archive's folder": tmp_path,
        "extracted": tmp_path / "cifar-10-batches-py",
        "extracted's parent": tmp_path,
    }[form]
    data = load_cifar10(path)
    assert data.train_images.shape == (20, 32, 32, 3) and data.test_images.shape == (3, 32, 32, 3)
    # Pixel (row 2, column 5) of image 0: red at 2*32+5, green 1024 later, blue 2048 later.
    row = batches["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(data.train_images[0, 2, 5], [row[69], row[1024 + 69], row[2048 + 69]])
    assert data.train_labels[:4].tolist() == batches["data_batch_1"][b"labels"] and data.classes[0] == "airplane"


def test_cifar10_errors_name_the_missing_file_and_refuse_foreign_pickles(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-python.tar.gz or cifar-10-batches-py/.*cs.toronto"):
        load_cifar10(tmp_path)
    write_cifar(tmp_path, archive=False)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected .*data_batch_3"):
        load_cifar10(tmp_path)
    evil = pickle.dumps({b"data": __import__("os").getcwd, b"labels": []})
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(evil)
    with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR-10 python batch .*may not contain"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    "change,pattern",
    [
        ({b"labels": [10, 0, 1, 2]}, r"labels must be in \[0, 9\], got values from 0 to 10"),
        ({b"labels": [-1, 0, 1, 2]}, r"labels must be in \[0, 9\], got values from -1 to 2"),
        ({b"labels": [0.5, 1.0, 2.0, 3.0]}, r"labels are a list of integers, got dtype float64"),
        ({b"data": np.full((4, 3072), 300, np.int64)}, r"pixels are uint8, got dtype int64"),
    ],
    ids=["label 10", "label -1", "float labels", "pixels 300"],
)
def test_cifar10_refuses_what_the_official_format_does_not_hold(tmp_path, change, pattern):
    write_cifar(tmp_path, archive=False)
    batch = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({**batch, **change}, protocol=2))
    with pytest.raises(ValueError, match=rf"data_batch_2: CIFAR-10 {pattern}"):
        load_cifar10(tmp_path)


def test_cifar10_refuses_a_truncated_archive_and_a_duplicate_member(tmp_path):
    import io
    import tarfile

    write_cifar(tmp_path, archive=True)
    archive = tmp_path / "cifar-10-python.tar.gz"
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz is truncated or corrupted"):
        load_cifar10(archive)
    archive.write_bytes(whole)
    with tarfile.open(tmp_path / "dup.tar", "w") as tar:
        blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
        for folder in ("cifar-10-batches-py", "other"):
            info = tarfile.TarInfo(f"{folder}/data_batch_1")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match=r"holds data_batch_1 twice \(cifar-10-batches-py/data_batch_1 and other/"):
        load_cifar10(tmp_path / "dup.tar")


def test_flatter_exposes_the_loaders():
    assert flatter.data.load_fashion_mnist is load_fashion_mnist
