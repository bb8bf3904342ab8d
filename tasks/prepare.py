"""Prepare: read the dataset into one array artefact, with provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task

from seqmia.artifacts import write_json, write_npz
from seqmia.data import data_root, is_image, normalisation_stats
from seqmia.layout import Layout
from seqmia.params.data import DataParams
from seqmia.sources import load_dataset
from tasks.common import ARTEFACT_TASK


def portable(value: Any, root: Path) -> Any:
    """``value`` with the data root's absolute path written as ``$SEQMIA_DATA_ROOT``, so the same
    dataset gives the same bytes (and DVC hash) on every host and data path."""
    if isinstance(value, str):
        return value.replace(str(root.resolve()), "$SEQMIA_DATA_ROOT")
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    return value


@task(**ARTEFACT_TASK)
def prepare_dataset(data: DataParams, layout: Layout) -> dict:
    """Read dataset ``data.name`` from the data root and write ``dataset.npz`` + ``info.json``.

    ``x`` is (N, H, W, C) uint8 for images, (N, D) float32 for tabular and text features."""
    logger = get_run_logger()
    root = data_root()
    logger.info("reading %s from data root %s", data.name, root.resolve())
    raw = load_dataset(
        data.name, root, path=data.path, download=data.download, vocab_size=data.vocab_size
    )
    mean, std = normalisation_stats(raw.x)
    write_npz(
        layout.dataset_file,
        x=raw.x,
        y=raw.y,
        split=raw.split,
        classes=np.array(raw.classes),
        mean=mean,
        std=std,
    )
    info = {
        "name": data.name,
        "source": raw.source,
        "sha256": raw.sha256,
        "n_samples": int(len(raw.y)),
        "sample_shape": list(raw.x.shape[1:]),
        "classes": raw.classes,
        "per_split": {s: int((raw.split == s).sum()) for s in np.unique(raw.split)},
        "kind": "image" if is_image(raw.x) else "features",
        "normalisation": (
            "per-pixel mean and std over all prepared samples"
            if is_image(raw.x)
            else "none (mean 0, std 1): features as published"
        ),
        **raw.details,
    }
    write_json(layout.dataset_info, portable(info, root))
    logger.info(
        "prepared %d samples of shape %s in %d classes (sha256 %s…)",
        info["n_samples"], tuple(info["sample_shape"]), len(raw.classes), raw.sha256[:12],
    )  # fmt: skip
    return info
