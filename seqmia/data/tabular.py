"""Tabular datasets of the membership-inference literature in their publisher's form.

Location, Purchase100 and Texas100 come from the authors of the first membership-inference paper
(Shokri et al., S&P 2017; repository privacytrustlab/datasets) as one tgz each. Location and
Purchase100 hold one comma-separated file whose rows are ``"label",f1,…,fD`` with a quoted label
1…C; Texas100 ships the same rows as two files, ``texas/100/feats`` (features) and
``texas/100/labels`` (one label per line). Labels become 0…C-1; features stay as published
(binary indicators) as float32.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from seqmia.data.readers import (
    DATA_ROOT_ENV,
    DatasetNotFoundError,
    RawDataset,
    download_url,
    downloaded,
    fetching,
    hash_files,
    reading,
)
from seqmia.base.errors import UserError

PUBLISHER_URL = "https://github.com/privacytrustlab/datasets/raw/master/"


@dataclasses.dataclass(frozen=True)
class TabularSpec:
    """One published tabular dataset: its archive's file name and what it should hold."""

    archive: str
    description: str

    @property
    def url(self) -> str:
        return PUBLISHER_URL + self.archive


TABULAR = {
    "location": TabularSpec("dataset_location.tgz", "Foursquare Bangkok check-ins, 446 features"),
    "purchase100": TabularSpec("dataset_purchase.tgz", "Kaggle shopper histories, 600 features"),
    "texas100": TabularSpec("dataset_texas.tgz", "Texas hospital discharges, 6,169 features"),
}


class TabularFormatError(UserError, ValueError):
    """The archive does not hold rows in the publisher's form."""


def _read_csv(blob: bytes) -> np.ndarray:
    """Comma-separated numbers, quoted or not, no header -> (rows, columns) float64."""
    frame = pd.read_csv(io.BytesIO(blob), header=None, dtype=np.float64)
    return frame.to_numpy()


def _labels_from_published(raw: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Published labels 1…C (as floats) -> (N,) int64 0…C-1 and class names "1"…"C"."""
    if not np.all(raw == np.round(raw)) or raw.min() < 1:
        raise TabularFormatError(f"{where}: labels must be integers 1…C, got {np.unique(raw)[:5]}")
    labels = raw.astype(np.int64) - 1
    num_classes = int(labels.max()) + 1
    return labels, [str(i + 1) for i in range(num_classes)]


def parse_tabular_archive(archive: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Rows of a publisher's tgz: (N, D) float32 features, (N,) int64 labels, class names and the
    archive members read. One member: label in the first column. Members ``…/feats`` and
    ``…/labels``: features and labels in separate files (Texas100)."""
    with tarfile.open(archive, "r:*") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        feats = [n for n in members if Path(n).name == "feats"]
        labels = [n for n in members if Path(n).name == "labels"]
        if len(feats) == 1 and len(labels) == 1:
            x = _read_csv(tar.extractfile(members[feats[0]]).read())
            raw_y = _read_csv(tar.extractfile(members[labels[0]]).read())[:, 0]
            used = [feats[0], labels[0]]
        elif len(members) == 1:
            (name,) = members
            rows = _read_csv(tar.extractfile(members[name]).read())
            x, raw_y, used = rows[:, 1:], rows[:, 0], [name]
        else:
            raise TabularFormatError(
                f"{archive} holds {sorted(members)}; expected one comma-separated file "
                "(label, features) or a feats/labels pair"
            )
    if len(x) != len(raw_y) or x.shape[1] == 0:
        raise TabularFormatError(f"{archive}: {len(x)} feature rows but {len(raw_y)} labels")
    y, classes = _labels_from_published(raw_y, str(archive))
    return np.ascontiguousarray(x, dtype=np.float32), y, classes, used


def read_tabular(archive: Path) -> RawDataset:
    """A publisher's tgz as a ``RawDataset``: x (N, D) float32, y (N,) 0…C-1, one split "all"."""
    with reading(archive):
        x, y, classes, members = parse_tabular_archive(archive)
    sha = hash_files([archive], archive.parent)[1][archive.name]  # the file's own SHA-256
    return RawDataset(
        x=x,
        y=y,
        split=np.full(len(y), "all"),
        classes=classes,
        source=f"publisher archive {archive.resolve()}",
        sha256=sha,
        details={"archive": archive.name, "members": members},
    )


def load_tabular(name: str, root: Path, download: bool) -> RawDataset:
    """``root/<name>/<publisher's archive>``, fetched from the publisher's URL if ``download``
    and no copy is there (the publisher gives no checksum; info.json records the SHA-256)."""
    spec = TABULAR[name]
    archive = root / name / spec.archive
    how = None
    if not archive.is_file() and download:
        with fetching(name, spec.url, [archive]):
            download_url(spec.url, archive)
        how = spec.url
    if not archive.is_file():
        raise DatasetNotFoundError(
            f"{name} ({spec.description}) not found. Looked for {archive.resolve()} (the "
            f"publisher's archive as it comes). Either point ${DATA_ROOT_ENV} at a folder holding "
            f"{name}/{spec.archive}, or set data.download: auto (dvc exp run "
            f"-S data.download=auto) to fetch it from {spec.url} (needs internet)."
        )
    return downloaded(read_tabular(archive), how)
