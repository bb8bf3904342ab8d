"""Dataset sources: read a published dataset into arrays, with provenance.

A source returns a ``RawDataset``: every sample of the publisher's train and test splits (SeqMIA
merges them and re-partitions). Images are kept as uint8 ``(N, H, W, C)``; conversion to model
input happens later, only for the samples a stage needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import decode_image

from seqmia.errors import UserError

# torchvision 0.29 marks its image decoders deprecated in favour of torchcodec; they are still the
# fastest way to decode small JPEG/PNG files with the pinned release, so keep them quietly.
warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)

DATA_ROOT_ENV = "SEQMIA_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data/raw")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


class DatasetNotFoundError(UserError, FileNotFoundError):
    """No copy of the requested dataset where the pipeline looked."""


@dataclasses.dataclass(frozen=True)
class RawDataset:
    """All samples of a dataset as published.

    x: (N, H, W, C) uint8 images.
    y: (N,) int64 class indices into ``classes``.
    split: (N,) the publisher's split of each sample, "train" or "test".
    """

    x: np.ndarray
    y: np.ndarray
    split: np.ndarray
    classes: list[str]
    source: str
    sha256: str


def data_root() -> Path:
    """The folder holding one sub-folder per dataset: ``$SEQMIA_DATA_ROOT`` or ``data/raw``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


def _list_image_folder(split_dir: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Classes (sorted folder names) and (file, class index) pairs of one ImageFolder split."""
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    files = [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((split_dir / name).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    return classes, files


def _decode(blob: bytes) -> np.ndarray:
    """Decode one image file's bytes to (H, W, C) uint8; grey images keep one channel.

    torchvision's decoder (JPEG, PNG, GIF, WebP) is about 4x faster than PIL's on small images;
    PIL reads every other format.
    """
    try:
        chw = decode_image(torch.frombuffer(bytearray(blob), dtype=torch.uint8))  # (C, H, W)
        arr = chw.permute(1, 2, 0).numpy()
    except RuntimeError:
        with Image.open(io.BytesIO(blob)) as img:
            grey = img.mode in ("1", "L", "I;16", "I")
            arr = np.asarray(img.convert("L" if grey else "RGB"), dtype=np.uint8)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.shape[2] in (2, 4):  # drop an alpha channel
        arr = arr[:, :, : arr.shape[2] - 1]
    return np.ascontiguousarray(arr)


def read_image_folder(folder: Path, splits: Sequence[str] = ("train", "test")) -> RawDataset:
    """Read ``folder/<split>/<class>/<image>`` for each split present (torchvision ImageFolder).

    All images must share one size. The hash covers each file's relative path and bytes.
    """
    present = [s for s in splits if (folder / s).is_dir()]
    if not present:
        raise DatasetNotFoundError(f"no split folders {list(splits)} under {folder}")
    classes: list[str] | None = None
    entries: list[tuple[Path, int, str]] = []
    for split in present:
        split_classes, files = _list_image_folder(folder / split)
        if classes is None:
            classes = split_classes
        elif split_classes != classes:
            raise ValueError(f"class folders of {folder / split} differ from those of {present[0]}")
        entries += [(f, label, split) for f, label in files]
    if not entries:
        raise DatasetNotFoundError(f"no image files under {folder}")

    blobs = [f.read_bytes() for f, _, _ in entries]
    digest = hashlib.sha256()
    for (f, _, _), blob in zip(entries, blobs, strict=False):
        digest.update(str(f.relative_to(folder)).encode())
        digest.update(hashlib.sha256(blob).digest())
    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(_decode, blobs, chunksize=256))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images under {folder} differ in size: {sorted(shapes)[:3]}")
    return RawDataset(
        x=np.stack(images),
        y=np.array([label for _, label, _ in entries], dtype=np.int64),
        split=np.array([split for _, _, split in entries]),
        classes=list(classes or []),
        source=f"image folder {folder.resolve()}",
        sha256=digest.hexdigest(),
    )


def read_torchvision_cifar10(root: Path, download: bool) -> RawDataset:
    """CIFAR-10 through torchvision (``root/cifar-10-batches-py``), downloading if asked."""
    from torchvision.datasets import CIFAR10

    parts = [CIFAR10(str(root), train=train, download=download) for train in (True, False)]
    digest = hashlib.sha256()
    batches = root / "cifar-10-batches-py"
    for f in sorted(batches.iterdir()):
        digest.update(f.name.encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return RawDataset(
        x=np.concatenate([p.data for p in parts]).astype(np.uint8),
        y=np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64),
        split=np.array(["train"] * len(parts[0]) + ["test"] * len(parts[1])),
        classes=list(parts[0].classes),
        source=f"torchvision CIFAR10 {batches.resolve()}",
        sha256=digest.hexdigest(),
    )


def load_dataset(name: str, root: Path, path: str = "", download: bool = False) -> RawDataset:
    """Find and read dataset ``name`` under ``root``.

    ``cifar10``: ``root/cifar10/{train,test}/<class>/`` (ImageFolder layout), else torchvision's
    ``root/cifar10/cifar-10-batches-py``, else a torchvision download when ``download``.
    ``imagefolder``: the tree at ``path`` (relative to ``root`` unless absolute).
    Raises ``DatasetNotFoundError`` naming every path tried and how to get the data.
    """
    if name == "imagefolder":
        folder = Path(path) if Path(path).is_absolute() else root / path
        if not (folder / "train").is_dir():
            raise DatasetNotFoundError(
                f"image folder dataset not found: looked for {folder.resolve()}/train/<class>/. "
                f"Set data.path to a folder with train/<class>/ (and optionally test/<class>/) "
                f"image files, relative to the data root {root.resolve()} "
                f"(${DATA_ROOT_ENV} or data/raw) or absolute."
            )
        return read_image_folder(folder)
    if name == "cifar10":
        folder = root / "cifar10"
        if (folder / "train").is_dir():
            return read_image_folder(folder)
        if (folder / "cifar-10-batches-py").is_dir() or download:
            return read_torchvision_cifar10(folder, download=download)
        raise DatasetNotFoundError(
            "CIFAR-10 not found. Looked for "
            f"{(folder / 'train').resolve()}/<class>/*.png|jpg (ImageFolder layout) and "
            f"{(folder / 'cifar-10-batches-py').resolve()} (torchvision layout). "
            f"Either point ${DATA_ROOT_ENV} at a folder holding cifar10/ in one of those layouts, "
            "or set data.download: true (dvc exp run -S data.download=true) to fetch it with "
            "torchvision's downloader (needs internet)."
        )
    raise ValueError(f"unknown dataset {name!r}")


def normalisation_stats(x: np.ndarray, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation over samples, in [0, 1] units.

    x: (N, H, W, C) uint8. Returns two float32 arrays of shape (H, W, C). Accumulates in float64
    over chunks so memory stays at one chunk. The std is floored so constant pixels (the borders
    of MNIST-like images) do not divide by zero.
    """
    mean = x.mean(axis=0, dtype=np.float64)
    sq = np.zeros(x.shape[1:], dtype=np.float64)
    for start in range(0, len(x), chunk):
        centred = x[start : start + chunk].astype(np.float64) - mean
        sq += (centred * centred).sum(axis=0)
    std = np.sqrt(sq / len(x))
    return (mean / 255.0).astype(np.float32), np.maximum(std / 255.0, 1e-3).astype(np.float32)


def to_model_input(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> normalised float32 tensor (N, C, H, W)."""
    xf = (x.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(xf.transpose(0, 3, 1, 2)))
