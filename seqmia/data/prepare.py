"""The prepare stage's result: a read dataset as the arrays every later stage loads, and its
provenance record."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqmia.data.inputs import is_image, normalisation_stats
from seqmia.data.readers import RawDataset, portable


def prepared_dataset(
    raw: RawDataset, name: str, root: Path
) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and provenance of dataset ``name`` read from the data folder ``root``.

    Arrays: ``x`` (N, H, W, C) uint8 or (N, D) float32, ``y`` (N,), ``split`` (N,), ``classes``
    (K,), and the normalisation ``mean`` and ``std`` (``normalisation_stats``). Provenance: name,
    source, hash, sizes, classes, per-split counts, kind and normalisation, then ``raw.details``;
    with ``root``'s absolute path written as the placeholder (``portable``), so the record does
    not depend on where the data lives.
    """
    mean, std = normalisation_stats(raw.x)
    arrays = {
        "x": raw.x, "y": raw.y, "split": raw.split, "classes": np.array(raw.classes),
        "mean": mean, "std": std,
    }
    image = is_image(raw.x)
    info = {
        "name": name,
        "source": raw.source,
        "obtained": raw.obtained,
        "sha256": raw.sha256,
        "n_samples": int(len(raw.y)),
        "sample_shape": list(raw.x.shape[1:]),
        "classes": raw.classes,
        "per_split": {s: int((raw.split == s).sum()) for s in np.unique(raw.split)},
        "kind": "image" if image else "features",
        "normalisation": (
            "per-pixel mean and std over all prepared samples"
            if image
            else "none (mean 0, std 1): features as published"
        ),
        **raw.details,
    }
    return arrays, portable(info, root)
