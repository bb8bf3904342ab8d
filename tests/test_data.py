"""Dataset sources: ImageFolder reading, dataset lookup errors, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqmia.data.inputs import input_shape, normalisation_stats, to_model_input
from seqmia.data.prepare import prepared_dataset
from seqmia.data.readers import (
    DATA_ROOT_PLACEHOLDER,
    DatasetNotFoundError,
    RawDataset,
    localised,
    portable,
    read_image_folder,
)
from seqmia.data.sources import load_dataset

# Folder names deliberately not in creation order: labels must follow sorted names.
CLASSES = ("zebra", "apple")


def _pixels(class_index: int, image_index: int, split: str, channels: int) -> np.ndarray:
    rng = np.random.default_rng([class_index, image_index, split == "test"])
    shape = (8, 8) if channels == 1 else (8, 8, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def make_tree(root: Path, mode: str = "RGB") -> dict[str, np.ndarray]:
    """2 classes x (3 train + 2 test) PNG images of 8x8; returns the expected arrays."""
    channels = 3 if mode == "RGB" else 1
    xs, ys, splits = [], [], []
    for split, count in (("train", 3), ("test", 2)):
        for label, name in enumerate(sorted(CLASSES)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                arr = _pixels(label, i, split, channels)
                Image.fromarray(arr, mode=mode).save(folder / f"img_{i}.png")
                xs.append(arr.reshape(8, 8, channels))
                ys.append(label)
                splits.append(split)
    (root / "train" / "apple" / "notes.txt").write_text("not an image")
    return {"x": np.stack(xs), "y": np.array(ys), "split": np.array(splits)}


@pytest.fixture
def rgb_tree(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "tree"
    return root, make_tree(root)


def test_read_rgb_image_folder(rgb_tree):
    root, expected = rgb_tree
    data = read_image_folder(root)
    assert data.x.shape == (10, 8, 8, 3)
    assert data.x.dtype == np.uint8
    assert data.y.dtype == np.int64
    assert data.classes == ["apple", "zebra"]
    np.testing.assert_array_equal(data.x, expected["x"])
    np.testing.assert_array_equal(data.y, expected["y"])
    np.testing.assert_array_equal(data.split, expected["split"])
    assert list(data.split) == ["train"] * 6 + ["test"] * 4


def test_read_greyscale_image_folder(tmp_path):
    root = tmp_path / "grey"
    expected = make_tree(root, mode="L")
    data = read_image_folder(root)
    assert data.x.shape == (10, 8, 8, 1)
    assert data.x.dtype == np.uint8
    np.testing.assert_array_equal(data.x, expected["x"])
    np.testing.assert_array_equal(data.y, expected["y"])


def test_hash_is_stable_and_content_sensitive(rgb_tree):
    root, _ = rgb_tree
    first = read_image_folder(root).sha256
    assert read_image_folder(root).sha256 == first
    target = root / "test" / "zebra" / "img_1.png"
    arr = np.asarray(Image.open(target)).copy()
    arr[0, 0, 0] ^= 1
    Image.fromarray(arr).save(target)
    assert read_image_folder(root).sha256 != first


def test_missing_cifar10_error_tells_where_and_how(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", root)
    message = str(info.value)
    assert str((root / "cifar10" / "train").resolve()) in message
    assert str((root / "cifar10" / "cifar-10-batches-py").resolve()) in message
    assert "SEQMIA_DATA_ROOT" in message
    assert "data.download" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_image_folder_error_names_path(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("imagefolder", tmp_path, path="nothing_here")
    assert str((tmp_path / "nothing_here").resolve()) in str(info.value)


def test_load_imagefolder_relative_and_absolute(tmp_path):
    expected = make_tree(tmp_path / "mytree")
    relative = load_dataset("imagefolder", tmp_path, path="mytree")
    np.testing.assert_array_equal(relative.x, expected["x"])
    absolute = load_dataset("imagefolder", tmp_path / "elsewhere", path=str(tmp_path / "mytree"))
    assert absolute.sha256 == relative.sha256


def test_load_cifar10_in_imagefolder_layout(tmp_path):
    expected = make_tree(tmp_path / "cifar10")
    data = load_dataset("cifar10", tmp_path)
    np.testing.assert_array_equal(data.x, expected["x"])


def test_unknown_dataset_raises(tmp_path):
    with pytest.raises(ValueError, match="emnist"):
        load_dataset("emnist", tmp_path)


def test_normalisation_stats_match_numpy():
    x = np.random.default_rng(0).integers(0, 256, size=(23, 4, 5, 3), dtype=np.uint8)
    mean, std = normalisation_stats(x, chunk=5)
    assert mean.shape == std.shape == (4, 5, 3)
    assert mean.dtype == std.dtype == np.float32
    xf = x.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, xf.mean(axis=0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(std, xf.std(axis=0), rtol=0, atol=1e-5)


def test_normalisation_std_floor_for_constant_pixels():
    x = np.full((6, 2, 2, 1), 7, dtype=np.uint8)
    mean, std = normalisation_stats(x, chunk=4)
    np.testing.assert_allclose(mean, 7 / 255, atol=1e-7)
    assert (std > 0).all()


def test_to_model_input_layout_and_values():
    x = np.random.default_rng(1).integers(0, 256, size=(5, 4, 6, 3), dtype=np.uint8)
    mean, std = normalisation_stats(x)
    out = to_model_input(x, mean, std)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (5, 3, 4, 6)
    assert out.dtype == torch.float32
    expected = ((x / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    flat = out.double().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=0), 1.0, atol=1e-4)


def test_to_model_input_in_chunks_equals_all_at_once_bit_for_bit():
    x = np.random.default_rng(3).integers(0, 256, size=(11, 4, 6, 3), dtype=np.uint8)
    mean, std = normalisation_stats(x)
    whole = to_model_input(x, mean, std, chunk=len(x)).numpy()
    reference = np.ascontiguousarray(
        ((x.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    )
    for chunk in (1, 3, 4, 100):
        out = to_model_input(x, mean, std, chunk=chunk)
        assert out.is_contiguous()
        np.testing.assert_array_equal(out.numpy().view(np.uint32), whole.view(np.uint32))
    np.testing.assert_array_equal(whole.view(np.uint32), reference.view(np.uint32))


def test_feature_vectors_identity_normalisation_and_input():
    x = np.random.default_rng(2).integers(0, 2, size=(7, 5)).astype(np.float32)
    mean, std = normalisation_stats(x)
    assert mean.shape == std.shape == (5,)
    assert mean.dtype == std.dtype == np.float32
    assert (mean == 0).all() and (std == 1).all()
    out = to_model_input(x, mean, std)
    assert out.shape == (7, 5) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), x)


def test_input_shape_of_images_and_features():
    assert input_shape(np.zeros((4, 28, 28, 1), np.uint8)) == (1, 28, 28)
    assert input_shape(np.zeros((4, 446), np.float32)) == (446,)


def test_portable_paths_hide_the_data_root_and_come_back(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    value = {"source": f"image folder {root.resolve()}/cifar10", "files": [f"{root.resolve()}/a"]}
    written = portable(value, root)
    assert written == {
        "source": f"image folder {DATA_ROOT_PLACEHOLDER}/cifar10",
        "files": [f"{DATA_ROOT_PLACEHOLDER}/a"],
    }
    assert DATA_ROOT_PLACEHOLDER == "$SEQMIA_DATA_ROOT"
    assert localised(written["source"], root) == value["source"]


def test_prepared_dataset_arrays_and_provenance(tmp_path):
    x = np.zeros((3, 2, 2, 1), np.uint8)
    x[0] = 255
    raw = RawDataset(
        x=x,
        y=np.array([0, 1, 1]),
        split=np.array(["train", "train", "test"]),
        classes=["a", "b"],
        source=f"image folder {tmp_path.resolve()}/d",
        sha256="0" * 64,
        details={"extra": 1},
    )
    arrays, info = prepared_dataset(raw, "imagefolder", tmp_path)
    assert sorted(arrays) == ["classes", "mean", "split", "std", "x", "y"]
    np.testing.assert_allclose(arrays["mean"], np.full((2, 2, 1), 1 / 3), rtol=1e-6)
    assert info["source"] == f"image folder {DATA_ROOT_PLACEHOLDER}/d"
    assert info["per_split"] == {"test": 1, "train": 2} and info["kind"] == "image"
    assert info["sample_shape"] == [2, 2, 1] and info["extra"] == 1
