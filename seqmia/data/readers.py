"""Reading published datasets from files: image decoding, hashing, downloading, archive extraction.

A source returns a ``RawDataset``: every sample of the publisher's splits (SeqMIA merges them and
re-partitions). Images are kept as uint8 ``(N, H, W, C)``, tabular and text features as float32
``(N, D)``. Only the prepare stage (and the member lists of a given target, which name image
files) reads files this way; turning arrays into model input is ``seqmia.data.inputs``.
``seqmia.data.sources`` finds a dataset by name, ``seqmia.data.tabular`` and ``seqmia.data.text`` read the
non-image sets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.error
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from seqmia.base.errors import DamagedFileError, UserError, first_line

# torchvision 0.29 marks its image decoders deprecated in favour of torchcodec; they are still the
# fastest way to decode small JPEG/PNG files with the pinned release, so keep them quietly.
warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)

DATA_ROOT_ENV = "SEQMIA_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data/raw")
# What artefacts write instead of the data root's absolute path, so the same dataset gives the
# same bytes (and DVC hash) on every host and data path.
DATA_ROOT_PLACEHOLDER = "$" + DATA_ROOT_ENV
IMAGE_FOLDER_SOURCE = "image folder "  # prefix of a RawDataset.source read from an image folder
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


class DatasetNotFoundError(UserError, FileNotFoundError):
    """No copy of the requested dataset where the pipeline looked."""


@dataclasses.dataclass(frozen=True)
class RawDataset:
    """All samples of a dataset as published.

    x: (N, H, W, C) uint8 images, or (N, D) float32 feature vectors (tabular, text).
    y: (N,) int64 class indices into ``classes``.
    split: (N,) the publisher's split of each sample ("train", "test", "valid"; "all" where the
    publisher ships one unsplit file).
    source: where the data came from; sha256: digest of the files read.
    details: further provenance (file names and hashes, feature extraction settings).
    obtained: "local copy", or how this run downloaded it (``downloaded``).
    """

    x: np.ndarray
    y: np.ndarray
    split: np.ndarray
    classes: list[str]
    source: str
    sha256: str
    details: dict = dataclasses.field(default_factory=dict)
    obtained: str = "local copy"


def downloaded(raw: RawDataset, how: str | None) -> RawDataset:
    """``raw`` marked as fetched by this run (``how``: the downloader and its source), or as it
    is when ``how`` is None (read from a copy that was there)."""
    return raw if how is None else dataclasses.replace(raw, obtained=f"downloaded: {how}")


@contextlib.contextmanager
def fetching(what: str, source: str, looked: Sequence[Path]) -> Iterator[None]:
    """Run the download of ``what`` from ``source``; a network failure (offline, unreachable,
    timed out), a server's refusal (HTTP 404) or a downloader's own refusal (torchvision's
    failed MD5 check) becomes one ``DatasetNotFoundError`` line that names where a local copy
    was looked for, what failed, what it most likely means and what to do."""
    try:
        yield
    except UserError:
        raise
    except (OSError, RuntimeError, ValueError) as err:  # urllib's URLError is an OSError
        paths = " and ".join(str(p.resolve()) for p in looked)
        raise DatasetNotFoundError(
            f"{what} not found (looked for {paths}), and fetching it from {source} failed "
            f"({type(err).__name__}: {first_line(err)}); {likely_cause(err)}. Either point "
            f"${DATA_ROOT_ENV} at a folder holding it in that layout (docs/datasets.md), or "
            "run again once the cause is mended."
        ) from None


def likely_cause(err: Exception) -> str:
    """What a failed download most likely means, for the error line: only a failure to reach
    the server suggests the machine is offline."""
    if isinstance(err, urllib.error.HTTPError):  # the server answered: reachable, but refused
        if err.code in (404, 410):
            return "the server has no such file: the address may have moved"
        return "the server answered with that error"
    if isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return "the server could not be reached: this machine may be offline"
    return "the download or its check failed"


def data_root() -> Path:
    """The folder holding one sub-folder per dataset: ``$SEQMIA_DATA_ROOT`` or ``data/raw``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


def portable(value: Any, root: Path) -> Any:
    """``value`` (a string, or dicts and lists of them) with the absolute path of the data folder
    ``root`` written as ``DATA_ROOT_PLACEHOLDER``; other values unchanged."""
    if isinstance(value, str):
        return value.replace(str(root.resolve()), DATA_ROOT_PLACEHOLDER)
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    return value


def localised(value: str, root: Path) -> str:
    """The inverse of ``portable`` for one string: the placeholder replaced by ``root``'s absolute
    path."""
    return value.replace(DATA_ROOT_PLACEHOLDER, str(root.resolve()))


def _visible(folder: Path) -> list[Path]:
    """Entries of ``folder`` sorted by name, without hidden ones (``.ipynb_checkpoints``,
    ``.DS_Store``, editor backups): they are never classes or samples."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def list_image_folder(split_dir: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Classes (sorted folder names) and (file, class index) pairs of one ImageFolder split.

    Raises ``UserError`` naming a class folder that holds no image file (it would become a class
    without samples and shift every later label)."""
    classes = [p.name for p in _visible(split_dir) if p.is_dir()]
    files = []
    for label, name in enumerate(classes):
        images = [f for f in _visible(split_dir / name) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise UserError(
                f"class folder {split_dir / name} holds no image files "
                f"({', '.join(IMAGE_SUFFIXES)}); add its images or remove the folder"
            )
        files += [(f, label) for f in images]
    return classes, files


def _read_image(path: Path, blob: bytes) -> np.ndarray:
    """The bytes ``blob`` of image file ``path`` as (H, W, C) uint8; a ``DamagedFileError``
    naming the file if it is not a readable image."""
    if not blob:
        raise DamagedFileError(
            f"image file {path} is empty (0 bytes); replace it from the dataset's source "
            "(re-download) or delete it"
        )
    try:
        return _decode(blob)
    except (OSError, RuntimeError, ValueError, SyntaxError) as err:  # PIL's errors for bad files
        raise DamagedFileError(
            f"image file {path} cannot be decoded ({first_line(err)}): truncated, corrupt or "
            "not an image; replace it from the dataset's source (re-download) or delete it"
        ) from None


def _decode(blob: bytes) -> np.ndarray:
    """Decode one image file's bytes to (H, W, C) uint8; grey images keep one channel.

    torchvision's decoder (JPEG, PNG, GIF, WebP) is much faster than PIL's on small images; PIL
    reads every other format.
    """
    # Imported here: only image folders are decoded, and torch with torchvision takes about 3 s
    # to import, which every other stage and dataset would otherwise pay at start-up.
    import torch
    from PIL import Image
    from torchvision.io import decode_image

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
        split_classes, files = list_image_folder(folder / split)
        if classes is None:
            classes = split_classes
        elif split_classes != classes:
            only_first = sorted(set(classes) - set(split_classes))
            only_here = sorted(set(split_classes) - set(classes))
            raise UserError(
                f"class folders of {folder / split} differ from those of "
                f"{folder / present[0]}: missing in {split}: {only_first or 'none'}, "
                f"missing in {present[0]}: {only_here or 'none'}; give both splits the same classes"
            )
        entries += [(f, label, split) for f, label in files]
    if not entries:
        raise DatasetNotFoundError(f"no image files under {folder}")

    blobs = [f.read_bytes() for f, _, _ in entries]
    digest = hashlib.sha256()
    for (f, _, _), blob in zip(entries, blobs, strict=False):
        digest.update(str(f.relative_to(folder)).encode())
        digest.update(hashlib.sha256(blob).digest())
    # Decode straight into the one (N, H, W, C) array: no second copy of every image.
    paths = [f for f, _, _ in entries]
    first = _read_image(paths[0], blobs[0])
    x = np.empty((len(entries), *first.shape), dtype=np.uint8)

    def decode_into(i: int) -> tuple[int, ...]:
        image = _read_image(paths[i], blobs[i])
        if image.shape == first.shape:
            x[i] = image
        return image.shape

    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        shapes = set(pool.map(decode_into, range(len(entries)), chunksize=256))
    blobs.clear()  # the encoded files are not needed any more
    if len(shapes) != 1:
        raise ValueError(f"images under {folder} differ in size: {sorted(shapes)[:3]}")
    return RawDataset(
        x=x,
        y=np.array([label for _, label, _ in entries], dtype=np.int64),
        split=np.array([split for _, _, split in entries]),
        classes=list(classes or []),
        source=f"{IMAGE_FOLDER_SOURCE}{folder.resolve()}",
        sha256=digest.hexdigest(),
    )


def hash_files(files: Sequence[Path], base: Path) -> tuple[str, dict[str, str]]:
    """One SHA-256 over the files' paths (relative to ``base``) and contents, and each file's own.

    Returns (combined hex digest, {relative path: hex digest of the file}).
    """
    digest = hashlib.sha256()
    each: dict[str, str] = {}
    for f in sorted(files):
        name = str(Path(f).relative_to(base))
        file_hash = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        digest.update(name.encode())
        digest.update(bytes.fromhex(file_hash))
        each[name] = file_hash
    return digest.hexdigest(), each


def download_url(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` with urllib, printing progress to stderr (every 10% of the
    announced size, else every 10 MB). With ``sha256``, a file with another digest is refused
    (``DamagedFileError``) and removed. A partial or refused download never stays at ``dest``."""
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            step = total // 10 if total else 10 << 20
            done, shown = 0, 0
            print(f"downloading {url} ({total / 2**20:.1f} MB)", file=sys.stderr)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if done - shown >= step:
                    shown = done
                    part = f" ({done / total:.0%})" if total else ""
                    print(f"  {done / 2**20:.1f} MB{part}", file=sys.stderr)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DamagedFileError(
                f"the file downloaded from {url} has SHA-256 {digest.hexdigest()}, not the "
                f"published {sha256}: the transfer was damaged or the publisher's file changed; "
                "run again, and if it persists get a copy by hand (docs/datasets.md)"
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)
    return dest


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn the errors of a truncated or corrupt data file read inside the block (``EOFError``,
    tar/gzip/zlib errors, ``OSError``) into a ``DamagedFileError`` that names ``path``."""
    try:
        yield
    except UserError:
        raise
    except (EOFError, OSError, tarfile.TarError, zlib.error, ValueError, KeyError) as err:
        raise DamagedFileError(
            f"data file {path} is truncated or corrupt ({type(err).__name__}: {first_line(err)}); "
            "replace it with a fresh copy from its publisher (re-download)"
        ) from None


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract the tar ``archive`` into ``dest``: first into a temporary folder beside it, then
    move each top-level entry into place, so an interrupted extraction never leaves a half tree
    that a later run would read as the dataset. Entries already at ``dest`` are kept."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=dest) as tmp:
        with reading(archive), tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        for entry in sorted(Path(tmp).iterdir()):
            if not (dest / entry.name).exists():
                entry.rename(dest / entry.name)


def image_folder_index(source: str) -> dict[str, int] | None:
    """{path relative to the image folder: row of dataset.npz} for a dataset whose ``source`` is
    an image folder (``IMAGE_FOLDER_SOURCE`` + absolute path); None for any other source.

    Rows follow ``read_image_folder``: splits train then test, classes and files sorted.
    """
    if not source.startswith(IMAGE_FOLDER_SOURCE):
        return None
    folder = Path(source[len(IMAGE_FOLDER_SOURCE) :])
    index: dict[str, int] = {}
    for split in ("train", "test"):
        if (folder / split).is_dir():
            for f, _ in list_image_folder(folder / split)[1]:
                index[str(f.relative_to(folder))] = len(index)
    return index
