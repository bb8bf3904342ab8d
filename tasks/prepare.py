"""Prepare: read the dataset into one array artefact, with provenance."""

from __future__ import annotations

from prefect import get_run_logger, task

from seqmia.base.artifacts import write_json, write_npz
from seqmia.data.prepare import prepared_dataset
from seqmia.data.readers import data_root
from seqmia.data.sources import load_dataset
from seqmia.params.data import DataParams
from tasks.common import ARTEFACT_TASK
from tasks.layout import Layout


@task(**ARTEFACT_TASK)
def prepare_dataset(data: DataParams, layout: Layout) -> dict:
    """Read dataset ``data.name`` from the data root and write ``dataset.npz`` + ``info.json``.

    ``x`` is (N, H, W, C) uint8 for images, (N, D) float32 for tabular and text features."""
    logger = get_run_logger()
    root = data_root()
    logger.info("reading %s from data root %s", data.name, root.resolve())
    raw = load_dataset(
        data.name,
        root,
        path=data.path,
        download=data.download == "auto",
        vocab_size=data.vocab_size,
    )
    arrays, info = prepared_dataset(raw, data.name, root)
    write_npz(layout.dataset_file, **arrays)
    write_json(layout.dataset_info, info)
    logger.info(
        "prepared %d samples of shape %s in %d classes (sha256 %s…)",
        info["n_samples"],
        tuple(info["sample_shape"]),
        len(raw.classes),
        raw.sha256[:12],
    )
    return info
