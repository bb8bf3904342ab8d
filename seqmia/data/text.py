"""Text: 20 Newsgroups ("bydate" split) as TF-IDF feature vectors.

The archive is the one scikit-learn's ``fetch_20newsgroups`` downloads, kept as it comes:
``20news-bydate-train/<group>/<id>`` and ``20news-bydate-test/<group>/<id>``. Messages are read
whole (headers, quotes and signatures kept, as scikit-learn does by default), decoded as Latin-1
like scikit-learn, and turned into TF-IDF vectors with a vocabulary of the ``vocab_size`` most
frequent terms.

Which documents the vectoriser is fitted on: the publisher's training split only. SeqMIA merges
both splits and re-partitions them at random, so the vocabulary and the IDF weights come from a
fixed set of documents chosen before, and independently of, the membership roles: members and
non-members are featurised by the same function and in expectation both include training-split
documents. Fitting on everything would be equally role-blind; fitting on the target's members only
would make the featurisation itself a membership signal, which an audit must avoid.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

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

ARCHIVE_NAME = "20news-bydate.tar.gz"
# The URL scikit-learn's fetch_20newsgroups downloads the same archive from.
ARCHIVE_URL = "https://ndownloader.figshare.com/files/5975967"
# Its SHA-256, as scikit-learn's metadata for that file publishes it (a download must match).
ARCHIVE_SHA256 = "8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610"
_SPLITS = {"20news-bydate-train": "train", "20news-bydate-test": "test"}


def read_bydate_archive(archive: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """Every message of the archive: texts, group names, splits ("train"/"test"), sorted groups.

    Messages are ordered by split (train first), then group, then file name.
    """
    rows: list[tuple[str, str, str, str]] = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] not in _SPLITS:
                continue
            text = tar.extractfile(member).read().decode("latin-1")
            rows.append((_SPLITS[parts[0]], parts[1], parts[2], text))
    if not rows:
        raise DatasetNotFoundError(f"{archive} holds no 20news-bydate-{{train,test}}/<group>/<id>")
    rows.sort(key=lambda r: (r[0] != "train", r[1], r[2]))
    groups = sorted({r[1] for r in rows})
    return [r[3] for r in rows], [r[1] for r in rows], [r[0] for r in rows], groups


def tfidf_features(texts: list[str], fit_mask: np.ndarray, vocab_size: int) -> np.ndarray:
    """TF-IDF of every text with scikit-learn's ``TfidfVectorizer`` fitted on ``texts[fit_mask]``.

    Returns (N, V) float32 with V <= ``vocab_size`` (the most frequent terms of the fitted
    documents); rows are L2-normalised.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(max_features=vocab_size, dtype=np.float32)
    vectoriser.fit([t for t, keep in zip(texts, fit_mask, strict=True) if keep])
    return vectoriser.transform(texts).toarray().astype(np.float32)


def read_news20(archive: Path, vocab_size: int) -> RawDataset:
    """The bydate archive as TF-IDF vectors. x (N, V) float32, y (N,) index of the group."""
    with reading(archive):
        texts, group_of, split_of, groups = read_bydate_archive(archive)
    split = np.array(split_of)
    x = tfidf_features(texts, split == "train", vocab_size)
    index = {g: i for i, g in enumerate(groups)}
    sha = hash_files([archive], archive.parent)[1][archive.name]  # the file's own SHA-256
    return RawDataset(
        x=x,
        y=np.array([index[g] for g in group_of], dtype=np.int64),
        split=split,
        classes=groups,
        source=f"20 Newsgroups bydate archive {archive.resolve()}",
        sha256=sha,
        details={
            "archive": archive.name,
            "features": "TF-IDF (scikit-learn TfidfVectorizer, defaults), L2-normalised rows",
            "vectoriser_fitted_on": "publisher's train split",
            "vocab_size": int(x.shape[1]),
        },
    )


def load_news20(root: Path, download: bool, vocab_size: int) -> RawDataset:
    """``root/news20/20news-bydate.tar.gz``, fetched from scikit-learn's URL (and checked
    against its published SHA-256) if ``download`` and no copy is there."""
    archive = root / "news20" / ARCHIVE_NAME
    how = None
    if not archive.is_file() and download:
        with fetching("20 Newsgroups", ARCHIVE_URL, [archive]):
            download_url(ARCHIVE_URL, archive, sha256=ARCHIVE_SHA256)
        how = f"{ARCHIVE_URL} (SHA-256 checked)"
    if not archive.is_file():
        raise DatasetNotFoundError(
            f"20 Newsgroups not found. Looked for {archive.resolve()} (the bydate archive that "
            f"scikit-learn's fetch_20newsgroups downloads). Either point ${DATA_ROOT_ENV} at a "
            f"folder holding news20/{ARCHIVE_NAME}, or set data.download: auto (dvc exp run "
            f"-S data.download=auto) to fetch it from {ARCHIVE_URL} (needs internet)."
        )
    return downloaded(read_news20(archive, vocab_size), how)
