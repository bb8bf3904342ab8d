"""Named datasets: where each local copy lives under the data root, how it is read, and the
downloader a user with internet access gets it through.

The copy of dataset ``name`` lives in ``<data root>/<name>/``. For torchvision datasets that
folder is what torchvision takes as ``root`` (``mnist/MNIST/raw/…``, ``cifar100/cifar-100-python``,
``gtsrb/gtsrb/GTSRB/…``); for the others it holds the publisher's archive or folders as they come.
Readers parse the files themselves rather than through torchvision's dataset classes where those
check MD5 sums of the full release, so that the same code reads small test fixtures in the exact
layout and the real files.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from seqmia.data.readers import (
    DATA_ROOT_ENV,
    DatasetNotFoundError,
    RawDataset,
    download_url,
    downloaded,
    extract_archive,
    fetching,
    hash_files,
    read_image_folder,
    reading,
)
from seqmia.data.registry import DATASETS
from seqmia.base.errors import DamagedFileError, UserError, first_line
from seqmia.data.tabular import load_tabular  # noqa: F401 - a reader the registry names here
from seqmia.data.text import load_news20  # noqa: F401 - a reader the registry names here

# GTSRB images range from 15x15 to 250x250 pixels; like the membership-inference literature we
# resize them to one size so the CIFAR-style models take them.
GTSRB_SIZE = 32
CINIC10_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"

# (torchvision folder, torchvision class) of the IDX datasets.
_IDX = {"mnist": ("MNIST", "MNIST"), "fashion_mnist": ("FashionMNIST", "FashionMNIST")}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _not_found(what: str, looked: list[Path], how: str) -> DatasetNotFoundError:
    """The error of a missing dataset: every path tried and both ways to get the data."""
    paths = " and ".join(str(p.resolve()) for p in looked)
    return DatasetNotFoundError(
        f"{what} not found. Looked for {paths}. Either point ${DATA_ROOT_ENV} at a folder holding "
        f"it in that layout, or set data.download: auto (dvc exp run -S data.download=auto) to "
        f"fetch it with {how} (needs internet)."
    )


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100: torchvision's python-pickle layout


# The only globals a CIFAR python batch references: numpy's array reconstruction (protocol 2, as
# the publisher's Python 2 pickles store ``data``; ``_frombuffer`` for protocol 5 re-dumps),
# under numpy 1's and numpy 2's module names, and ``_codecs.encode``, which protocol-2 pickles
# written by Python 3 use to rebuild bytes from text. Anything else could run code.
_CIFAR_PICKLE_GLOBALS = frozenset(
    (module, name)
    for package in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{package}.multiarray", "_reconstruct"),
        (f"{package}.numeric", "_frombuffer"),
    )
) | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only: dicts, lists, strings, bytes, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refers to {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """One CIFAR python batch (a pickled dict) without running code: a ``DamagedFileError``
    naming the file if it refers to anything but plain data or is not a readable pickle."""
    try:
        with path.open("rb") as fh:
            batch = _PlainDataUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise DamagedFileError(
            f"CIFAR batch {path} is not plain data ({first_line(err)}); refused, since "
            "unpickling it could run code: replace it with the publisher's file (re-download)"
        ) from None
    except (EOFError, OSError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DamagedFileError(
            f"CIFAR batch {path} is truncated or corrupt ({type(err).__name__}: "
            f"{first_line(err)}); replace it with the publisher's file (re-download)"
        ) from None
    if not isinstance(batch, dict):
        raise DamagedFileError(f"CIFAR batch {path} does not hold a dict; re-download it")
    return batch


def read_cifar_python(folder: Path, fine: bool) -> RawDataset:
    """Read ``cifar-10-batches-py`` (``fine=False``) or ``cifar-100-python`` (``fine=True``).

    CIFAR-10: ``data_batch_1..5``, ``test_batch``, ``batches.meta``; CIFAR-100: ``train``,
    ``test``, ``meta`` with the 100 fine labels. Each batch is a pickled dict whose ``data`` is
    (n, 3072) uint8 in channel-major order. Returns x (N, 32, 32, 3) uint8.
    """
    if fine:
        parts = [("train", "train"), ("test", "test")]
        meta, label_key, names_key = "meta", "fine_labels", "fine_label_names"
    else:
        parts = [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]
        meta, label_key, names_key = "batches.meta", "labels", "label_names"
    files = [folder / name for name, _ in parts] + [folder / meta]
    xs, ys, splits = [], [], []
    for name, split in parts:
        batch = _unpickle(folder / name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (n, H, W, C)
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
        splits += [split] * len(data)
    sha, each = hash_files(files, folder)
    return RawDataset(
        x=np.ascontiguousarray(np.concatenate(xs)),
        y=np.concatenate(ys),
        split=np.array(splits),
        classes=list(_unpickle(folder / meta)[names_key]),
        source=f"torchvision CIFAR python layout {folder.resolve()}",
        sha256=sha,
        details={"files": each},
    )


def load_cifar(name: str, root: Path, download: bool) -> RawDataset:
    """``cifar10``: ``root/cifar10/{train,test}/<class>/`` (ImageFolder), else torchvision's
    ``cifar-10-batches-py``; ``cifar100``: ``root/cifar100/cifar-100-python``. Downloads with
    torchvision when ``download`` and no copy is found."""
    folder = root / name
    if name == "cifar10" and (folder / "train").is_dir():
        return read_image_folder(folder)
    sub = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    looked = ([folder / "train"] if name == "cifar10" else []) + [folder / sub]
    how = None
    if not (folder / sub).is_dir() and download:
        from torchvision.datasets import CIFAR10, CIFAR100

        tv_class = CIFAR10 if name == "cifar10" else CIFAR100
        with fetching(name, f"torchvision's {tv_class.__name__} downloader", looked):
            tv_class(str(folder), download=True)  # progress bar, MD5 of archive and batches
        how = f"torchvision {tv_class.__name__} from {tv_class.url} (MD5 checked)"
    if (folder / sub).is_dir():
        return downloaded(read_cifar_python(folder / sub, fine=name == "cifar100"), how)
    raise _not_found(name.upper().replace("CIFAR", "CIFAR-"), looked, "torchvision")


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST: torchvision's raw IDX files, gzipped or not


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (``.gz`` or plain): magic 0 0 <type> <ndim>, ndim big-endian uint32 sizes,
    then the data. Returns an array of those sizes (uint8 for MNIST)."""
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    if raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    return data.reshape(dims).astype(data.dtype.newbyteorder("="))


def _idx_file(raw_dir: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``raw_dir``, whichever exists (plain first)."""
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx_dataset(raw_dir: Path, classes: list[str]) -> RawDataset:
    """The train and t10k image/label IDX pairs in ``raw_dir``. x (N, 28, 28, 1) uint8."""
    files = {split: [_idx_file(raw_dir, n) for n in names] for split, names in _IDX_FILES.items()}
    missing = [
        n
        for split, names in _IDX_FILES.items()
        for n, f in zip(names, files[split], strict=True)
        if f is None
    ]
    if missing:
        raise DatasetNotFoundError(f"IDX files {missing} (or .gz) missing in {raw_dir.resolve()}")
    xs, ys, splits = [], [], []
    for split, (images, labels) in files.items():
        with reading(images):
            x = read_idx(images)
        with reading(labels):
            y = read_idx(labels).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise ValueError(f"{images} and {labels} do not pair up: {x.shape} vs {y.shape}")
        xs.append(x[..., None])  # grey images keep one channel: (n, H, W, 1)
        ys.append(y)
        splits += [split] * len(y)
    used = [f for pair in files.values() for f in pair if f is not None]
    sha, each = hash_files(used, raw_dir)
    return RawDataset(
        x=np.ascontiguousarray(np.concatenate(xs).astype(np.uint8)),
        y=np.concatenate(ys),
        split=np.array(splits),
        classes=classes,
        source=f"torchvision IDX layout {raw_dir.resolve()}",
        sha256=sha,
        details={"files": each},
    )


def load_idx(name: str, root: Path, download: bool) -> RawDataset:
    """``mnist`` / ``fashion_mnist`` from ``root/<name>/<TorchvisionName>/raw/``."""
    import torchvision.datasets as tvd

    sub, cls_name = _IDX[name]
    tv_class = getattr(tvd, cls_name)
    raw_dir = root / name / sub / "raw"
    found = all(_idx_file(raw_dir, n) for names in _IDX_FILES.values() for n in names)
    looked = [raw_dir / n for n in _IDX_FILES["train"] + _IDX_FILES["test"]]
    how = None
    if not found and download:
        with fetching(cls_name, f"torchvision's {cls_name} downloader", looked):
            for train in (True, False):
                tv_class(str(root / name), train=train, download=True)  # MD5 checked
        found, how = True, f"torchvision {cls_name} (MD5 checked)"
    if not found:
        raise _not_found(f"{cls_name} (IDX files, plain or .gz)", looked, "torchvision")
    return downloaded(read_idx_dataset(raw_dir, list(tv_class.classes)), how)


# ---------------------------------------------------------------------------------------------
# GTSRB: torchvision's layout (train: class folders of .ppm; test: Final_Test + a CSV of labels)


def gtsrb_samples(base: Path) -> list[tuple[Path, int, str]]:
    """(image file, class id, split) of every GTSRB image under ``base``, in torchvision's order:
    the training class folders sorted by name (a folder's position is its label) with their
    ``.ppm`` files sorted, then the test images in the order of ``GT-final_test.csv``.

    Raises ``UserError`` naming an empty class folder, a missing or malformed label file, or an
    image the label file lists that is not there."""
    training = base / "GTSRB" / "Training"
    classes = sorted(p.name for p in training.iterdir() if p.is_dir())
    samples = []
    for label, name in enumerate(classes):
        images = [Path(folder, f) for folder, _, files in sorted(os.walk(training / name))
                  for f in sorted(files) if f.lower().endswith(".ppm")]
        if not images:
            raise UserError(
                f"GTSRB class folder {training / name} holds no .ppm image; restore it from the "
                "dataset's source (re-download) or remove the folder"
            )
        samples += [(f, label, "train") for f in images]
    test_images = base / "GTSRB" / "Final_Test" / "Images"
    if not test_images.is_dir():
        return samples  # the training archive alone is a usable copy
    labels = base / "GT-final_test.csv"
    if not labels.is_file():
        raise UserError(
            f"GTSRB test images are in {test_images} but their labels file {labels} is missing; "
            "add GT-final_test.csv from the dataset's source, or remove Final_Test"
        )
    with open(labels, newline="", encoding="utf-8", errors="replace") as rows:
        for line, row in enumerate(csv.DictReader(rows, delimiter=";", skipinitialspace=True), 2):
            try:
                image, class_id = test_images / row["Filename"], int(row["ClassId"])
            except (KeyError, TypeError, ValueError):
                raise DamagedFileError(
                    f"GTSRB labels file {labels}, line {line}: no file name or integer ClassId "
                    f"({'; '.join(f'{k}={v}' for k, v in row.items())}); replace the file with "
                    "the publisher's GT-final_test.csv"
                ) from None
            if not image.is_file():
                raise DamagedFileError(
                    f"GTSRB labels file {labels}, line {line}, names {image}, which is missing; "
                    "restore the test images from the dataset's source (re-download)"
                )
            samples.append((image, class_id, "test"))
    return samples


def read_gtsrb_image(path: Path, size: int) -> np.ndarray:
    """One GTSRB image as torchvision loads it (PIL, RGB), resized to ``size`` x ``size``
    (bilinear): (size, size, 3) uint8. A ``DamagedFileError`` names a file that is not one."""
    blob = path.read_bytes()
    if not blob:
        raise DamagedFileError(
            f"GTSRB image {path} is empty (0 bytes); restore it from the dataset's source "
            "(re-download) or delete it"
        )
    try:
        with Image.open(io.BytesIO(blob)) as img:
            rgb = img.convert("RGB")
        return np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for bad files
        raise DamagedFileError(
            f"GTSRB image {path} cannot be decoded ({first_line(err)}): truncated, corrupt or not "
            "an image; restore it from the dataset's source (re-download) or delete it"
        ) from None


def read_gtsrb(base: Path, size: int = GTSRB_SIZE) -> RawDataset:
    """``base`` = ``<root>/gtsrb`` as torchvision's GTSRB lays it out under its ``root``:
    ``GTSRB/Training/<00000…>/*.ppm`` and ``GTSRB/Final_Test/Images/*.ppm`` with labels in
    ``GT-final_test.csv`` (``;``-separated, columns Filename … ClassId). Each image is resized to
    ``size`` x ``size`` (bilinear). x (N, size, size, 3) uint8; classes named by their id.

    Read here rather than through torchvision's dataset class, with the same order, decoding and
    resizing, so that a damaged file or label row is named in the error."""
    samples = gtsrb_samples(base)
    x = np.stack([read_gtsrb_image(path, size) for path, _, _ in samples])
    ys = [label for _, label, _ in samples]
    files = [f for f in base.rglob("*") if f.is_file() and f.suffix.lower() in (".ppm", ".csv")]
    sha, _ = hash_files(files, base)
    num_classes = max(ys) + 1
    return RawDataset(
        x=x,
        y=np.asarray(ys, dtype=np.int64),
        split=np.array([split for _, _, split in samples]),
        classes=[f"{i:05d}" for i in range(num_classes)],
        source=f"torchvision GTSRB layout {base.resolve()}, resized to {size}x{size}",
        sha256=sha,
        details={"resize": [size, size], "n_files": len(files)},
    )


def load_gtsrb(root: Path, download: bool) -> RawDataset:
    """GTSRB from ``root/gtsrb`` (torchvision's ``root``), downloading with torchvision if asked."""
    tv_root = root / "gtsrb"
    training = tv_root / "gtsrb" / "GTSRB" / "Training"
    how = None
    if not training.is_dir() and download:
        from torchvision.datasets import GTSRB

        with fetching("GTSRB", "torchvision's GTSRB downloader", [training]):
            for split in ("train", "test"):
                GTSRB(str(tv_root), split=split, download=True)  # MD5 checked
        how = "torchvision GTSRB (MD5 checked)"
    if not training.is_dir():
        raise _not_found("GTSRB", [training], "torchvision")
    return downloaded(read_gtsrb(tv_root / "gtsrb"), how)


# ---------------------------------------------------------------------------------------------
# CINIC-10: train/ valid/ test/ class folders as the publisher ships them


def load_cinic10(root: Path, download: bool) -> RawDataset:
    """CINIC-10 from ``root/cinic10/{train,valid,test}/<class>/*.png`` (all three splits)."""
    folder = root / "cinic10"
    how = None
    if not (folder / "train").is_dir() and download:
        with fetching("CINIC-10", CINIC10_URL, [folder / "train"]):
            archive = download_url(CINIC10_URL, folder / "CINIC-10.tar.gz")
        extract_archive(archive, folder)
        how = CINIC10_URL
    if not (folder / "train").is_dir():
        raise _not_found("CINIC-10", [folder / "train"], f"its publisher's archive {CINIC10_URL}")
    return downloaded(read_image_folder(folder, splits=("train", "valid", "test")), how)


# ---------------------------------------------------------------------------------------------


def load_image_folder(root: Path, download: bool, path: str) -> RawDataset:
    """The ImageFolder tree at ``path`` (relative to ``root`` unless absolute); ``download`` is
    unused (a user's own folder has no download)."""
    folder = Path(path) if Path(path).is_absolute() else root / path
    if not (folder / "train").is_dir():
        raise DatasetNotFoundError(
            f"image folder dataset not found: looked for {folder.resolve()}/train/<class>/. "
            f"Set data.path to a folder with train/<class>/ (and optionally test/<class>/) "
            f"image files, relative to the data root {root.resolve()} "
            f"(${DATA_ROOT_ENV} or data/raw) or absolute."
        )
    return read_image_folder(folder)


def load_dataset(
    name: str, root: Path, path: str = "", download: bool = False, vocab_size: int = 2000
) -> RawDataset:
    """Find and read dataset ``name`` under ``root`` (see the module docstring for layouts).

    ``imagefolder``: the tree at ``path`` (relative to ``root`` unless absolute).
    ``vocab_size``: TF-IDF vocabulary of the text sets. Raises ``DatasetNotFoundError`` naming
    every path tried and how to get the data.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    spec = DATASETS[name]
    options = {"path": path, "vocab_size": vocab_size}
    return spec.read(root=root, download=download, **{o: options[o] for o in spec.options})
