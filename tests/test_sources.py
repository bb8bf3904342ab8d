"""Every named dataset read from a small fixture in its publisher's exact layout."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqmia.base.errors import UserError
from seqmia.data.readers import DatasetNotFoundError, hash_files
from seqmia.data.registry import (
    DATASETS,
    FEATURE_DATASETS,
    IMAGE_DATASETS,
    TABULAR_DATASETS,
    TEXT_DATASETS,
)
from seqmia.data.sources import load_dataset, read_idx
from seqmia.data.tabular import TABULAR, TabularFormatError, parse_tabular_archive

DATASET_NAMES = tuple(DATASETS)


def _add_bytes(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def _tabular_rows(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, classes + 1, size=n), rng.integers(0, 2, size=(n, d))


def write_publisher_tgz(path: Path, member: str, labels: np.ndarray, feats: np.ndarray) -> Path:
    """One comma-separated file of ``"label",f1,…,fD`` rows in a tgz, as the publisher ships."""
    rows = zip(labels, feats, strict=True)
    lines = [f'"{y}",' + ",".join(str(v) for v in row) for y, row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, member, ("\n".join(lines) + "\n").encode())
    return path


def test_dataset_lists_agree():
    assert set(IMAGE_DATASETS + TABULAR_DATASETS + TEXT_DATASETS) == set(DATASET_NAMES)
    assert set(TABULAR_DATASETS + TEXT_DATASETS) == set(FEATURE_DATASETS)
    assert set(TABULAR) == set(TABULAR_DATASETS)


@pytest.mark.parametrize(
    ("name", "member"), [("location", "bangkok"), ("purchase100", "dataset_purchase")]
)
def test_tabular_single_file_layout(tmp_path, name, member):
    labels, feats = _tabular_rows(40, 7, classes=5, seed=1)
    archive = write_publisher_tgz(tmp_path / name / TABULAR[name].archive, member, labels, feats)
    data = load_dataset(name, tmp_path)
    assert data.x.shape == (40, 7) and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.x, feats)
    np.testing.assert_array_equal(data.y, labels - 1)  # published 1…C -> 0…C-1
    assert data.y.dtype == np.int64
    assert data.classes == [str(i) for i in range(1, labels.max() + 1)]
    assert set(data.split) == {"all"}
    assert data.sha256 == hash_files([archive], archive.parent)[1][archive.name]
    assert data.details["members"] == [member]


def test_texas_feats_labels_layout(tmp_path):
    labels, feats = _tabular_rows(30, 9, classes=4, seed=2)
    archive = tmp_path / "texas100" / "dataset_texas.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        _add_bytes(tar, "texas/100/feats", "\n".join(",".join(map(str, r)) for r in feats).encode())
        _add_bytes(tar, "texas/100/labels", "\n".join(map(str, labels)).encode())
    data = load_dataset("texas100", tmp_path)
    np.testing.assert_array_equal(data.x, feats)
    np.testing.assert_array_equal(data.y, labels - 1)


def test_tabular_label_zero_refused(tmp_path):
    archive = write_publisher_tgz(tmp_path / "a.tgz", "f", np.array([0, 1]), np.ones((2, 3)))
    with pytest.raises(TabularFormatError, match="1…C"):
        parse_tabular_archive(archive)


def test_tabular_two_unrelated_files_refused(tmp_path):
    archive = tmp_path / "b.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        _add_bytes(tar, "one", b'"1",0\n')
        _add_bytes(tar, "two", b'"1",0\n')
    with pytest.raises(TabularFormatError, match="expected one"):
        parse_tabular_archive(archive)


@pytest.mark.parametrize("name", ["location", "purchase100", "texas100", "news20"])
def test_missing_feature_dataset_error(tmp_path, name):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert str((tmp_path / name).resolve()) in message
    assert "SEQMIA_DATA_ROOT" in message and "data.download" in message and "https://" in message


NEWS = {
    "train": {
        "alt.atheism": ["God is a word", "faith and reason"],
        "sci.space": ["orbit rocket", "rocket launch to orbit", "moon landing"],
    },
    "test": {"alt.atheism": ["reason faith word"], "sci.space": ["orbit moon \xe9t\xe9"]},
}


def write_bydate_archive(path: Path) -> Path:
    """``20news-bydate-{train,test}/<group>/<id>`` Latin-1 messages in a tar.gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for split, groups in NEWS.items():
            for group, texts in groups.items():
                for i, text in enumerate(texts):
                    _add_bytes(
                        tar, f"20news-bydate-{split}/{group}/{5000 + i}", text.encode("latin-1")
                    )
    return path


def test_news20_bydate_layout_tfidf(tmp_path):
    write_bydate_archive(tmp_path / "news20" / "20news-bydate.tar.gz")
    data = load_dataset("news20", tmp_path, vocab_size=6)
    assert data.classes == ["alt.atheism", "sci.space"]
    assert data.x.shape == (7, 6) and data.x.dtype == np.float32
    assert list(data.split) == ["train"] * 5 + ["test"] * 2
    np.testing.assert_array_equal(data.y, [0, 0, 1, 1, 1, 0, 1])
    norms = np.linalg.norm(data.x, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
    assert data.details["vectoriser_fitted_on"] == "publisher's train split"


def test_news20_vocabulary_comes_from_train_split_only(tmp_path):
    write_bydate_archive(tmp_path / "news20" / "20news-bydate.tar.gz")
    data = load_dataset("news20", tmp_path, vocab_size=1000)
    # 12 distinct tokens of 2+ letters in the train split; "été" of the test split is not one.
    assert data.x.shape[1] == 12


# --- images ---------------------------------------------------------------------------------


def _cifar_batch(n: int, seed: int, label_key: str, classes: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key: rng.integers(0, classes, size=n).tolist(),
    }


def _dump(path: Path, obj: dict) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh)


def test_cifar100_python_layout(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    train = _cifar_batch(6, 0, "fine_labels", 100)
    test = _cifar_batch(4, 1, "fine_labels", 100)
    _dump(folder / "train", train)
    _dump(folder / "test", test)
    names = [f"c{i}" for i in range(100)]
    _dump(folder / "meta", {"fine_label_names": names, "coarse_label_names": ["x"] * 20})
    data = load_dataset("cifar100", tmp_path)
    assert data.x.shape == (10, 32, 32, 3) and data.x.dtype == np.uint8
    assert data.classes == names
    # channel-major rows: pixel (0, 0) of channel c is column 1024 * c
    np.testing.assert_array_equal(data.x[0, 0, 0], train["data"][0, [0, 1024, 2048]])
    np.testing.assert_array_equal(data.y, train["fine_labels"] + test["fine_labels"])
    assert list(data.split) == ["train"] * 6 + ["test"] * 4


def test_cifar10_python_layout(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _cifar_batch(2, i, "labels", 10))
    _dump(folder / "test_batch", _cifar_batch(3, 9, "labels", 10))
    _dump(folder / "batches.meta", {"label_names": [f"k{i}" for i in range(10)]})
    data = load_dataset("cifar10", tmp_path)
    assert data.x.shape == (13, 32, 32, 3)
    assert (data.split == "test").sum() == 3


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An IDX file: 0 0 0x08 ndim, big-endian sizes, uint8 data."""
    blob = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob += array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)


@pytest.mark.parametrize(("name", "sub"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_layout(tmp_path, name, sub, gz):
    raw = tmp_path / name / sub / "raw"
    rng = np.random.default_rng(3)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 5),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3),
    }
    for file, array in arrays.items():
        write_idx(raw / file, array, gz)
    data = load_dataset(name, tmp_path)
    assert data.x.shape == (8, 28, 28, 1) and data.x.dtype == np.uint8  # grey keeps one channel
    np.testing.assert_array_equal(data.x[:5, :, :, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.y[5:], arrays["t10k-labels-idx1-ubyte"])
    assert len(data.classes) == 10
    assert list(data.split) == ["train"] * 5 + ["test"] * 3


def test_read_idx_refuses_other_files(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "x")


def test_missing_mnist_names_raw_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", tmp_path)
    assert str((tmp_path / "fashion_mnist" / "FashionMNIST" / "raw").resolve()) in str(info.value)


def test_cinic10_three_splits(tmp_path):
    rng = np.random.default_rng(4)
    for split, count in (("train", 2), ("valid", 1), ("test", 1)):
        for cls in ("airplane", "cat"):
            folder = tmp_path / "cinic10" / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"cifar10-{split}-{i}.png")
    data = load_dataset("cinic10", tmp_path)
    assert data.x.shape == (8, 32, 32, 3)
    assert data.classes == ["airplane", "cat"]
    assert list(data.split) == ["train"] * 4 + ["valid"] * 2 + ["test"] * 2


def write_gtsrb(root: Path) -> Path:
    """A small GTSRB copy in torchvision's layout under ``root/gtsrb``; returns its base folder
    (``root/gtsrb/gtsrb``). Training: classes 0, 1, 2 with 2, 1, 2 images; test: 3 images."""
    base = root / "gtsrb" / "gtsrb"
    rng = np.random.default_rng(5)
    for cls, count in ((0, 2), (1, 1), (2, 2)):  # torchvision labels by class-folder order
        folder = base / "GTSRB" / "Training" / f"{cls:05d}"
        folder.mkdir(parents=True)
        for i in range(count):
            size = (20 + i * 7, 25)  # GTSRB images differ in size
            arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / f"00000_{i:05d}.ppm")
        (folder / f"GT-{cls:05d}.csv").write_text("Filename;Width;Height;ClassId\n")
    test_dir = base / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i, cls in enumerate((2, 1, 0)):
        Image.fromarray(rng.integers(0, 256, (40, 33, 3), dtype=np.uint8)).save(
            test_dir / f"{i:05d}.ppm"
        )
        rows.append(f"{i:05d}.ppm;33;40;1;1;30;38;{cls}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return base


def test_gtsrb_torchvision_layout_resized(tmp_path):
    write_gtsrb(tmp_path)
    data = load_dataset("gtsrb", tmp_path)
    assert data.x.shape == (8, 32, 32, 3) and data.x.dtype == np.uint8
    np.testing.assert_array_equal(data.y, [0, 0, 1, 2, 2, 2, 1, 0])
    assert list(data.split) == ["train"] * 5 + ["test"] * 3
    assert data.classes == ["00000", "00001", "00002"]


def test_gtsrb_reads_as_torchvisions_gtsrb_does(tmp_path):
    """Same order, labels and pixels as torchvision's dataset class, resized as before."""
    from torchvision.datasets import GTSRB

    base = write_gtsrb(tmp_path)
    data = load_dataset("gtsrb", tmp_path)
    expected = [
        GTSRB(str(base.parent), split=split)[i]
        for split, n in (("train", 5), ("test", 3))
        for i in range(n)
    ]
    for row, (img, label) in enumerate(expected):
        np.testing.assert_array_equal(data.x[row], np.asarray(img.resize((32, 32), Image.BILINEAR)))
        assert data.y[row] == label


def _damage_truncated(base: Path) -> Path:
    image = base / "GTSRB" / "Training" / "00001" / "00000_00000.ppm"
    image.write_bytes(image.read_bytes()[:40])
    return image


def _damage_empty(base: Path) -> Path:
    image = base / "GTSRB" / "Final_Test" / "Images" / "00001.ppm"
    image.write_bytes(b"")
    return image


def _damage_missing_image(base: Path) -> Path:
    (base / "GTSRB" / "Final_Test" / "Images" / "00002.ppm").unlink()
    return base / "GT-final_test.csv"


def _damage_bad_class(base: Path) -> Path:
    labels = base / "GT-final_test.csv"
    labels.write_text(labels.read_text().replace(";30;38;1", ";30;38;one"))
    return labels


def _damage_no_labels(base: Path) -> Path:
    (base / "GT-final_test.csv").unlink()
    return base / "GT-final_test.csv"


def _damage_empty_class(base: Path) -> Path:
    folder = base / "GTSRB" / "Training" / "00001"
    (folder / "00000_00000.ppm").unlink()
    return folder


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_damage_truncated, "cannot be decoded"),
        (_damage_empty, "is empty"),
        (_damage_missing_image, "line 4"),
        (_damage_bad_class, "line 3"),
        (_damage_no_labels, "is missing"),
        (_damage_empty_class, "holds no .ppm image"),
    ],
)
def test_a_damaged_gtsrb_copy_names_the_file_and_what_is_wrong(tmp_path, damage, said):
    named = damage(write_gtsrb(tmp_path))
    with pytest.raises(UserError) as info:
        load_dataset("gtsrb", tmp_path)
    message = str(info.value)
    assert str(named) in message and said in message
    assert "re-download" in message or "publisher" in message or "add GT-final_test" in message


@pytest.mark.parametrize("name", ["cifar100", "gtsrb", "cinic10", "mnist"])
def test_missing_image_dataset_error(tmp_path, name):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert str((tmp_path / name).resolve()) in message
    assert "data.download" in message
