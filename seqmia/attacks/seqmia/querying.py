"""Stage 3's queries: a series of models' logits on the attack samples, turned into metric
sequences as they arrive, and logits stored as tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqmia.attacks.seqmia.metrics import compute_metrics
from seqmia.attacks.seqmia.sequences import sequence_frame
from seqmia.data.inputs import input_shape, num_classes
from seqmia.models.build import load_model
from seqmia.models.inference import predict_logits
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import load_given_target, query_given_target


def model_logits(
    path: Path, train: TrainParams, dataset: dict[str, np.ndarray], inputs: torch.Tensor,
    ids: np.ndarray, batch: int, device: torch.device, given: TargetParams | None = None,
    root: Path | None = None,
) -> torch.Tensor:  # fmt: skip
    """Logits (N, C) of the ``train.model`` saved at ``path`` on ``inputs`` (N, ...), ``batch``
    samples at a time. With ``given`` (the ``target`` section of a checkpoint target), of that
    target instead: loaded from its files under the repository ``root`` and queried its own way on
    the prepared samples ``ids`` (N,)."""
    if given is not None:
        model = load_given_target(root, given, train, dataset, device)
        return query_given_target(given, dataset, model, ids, batch)
    model = load_model(train, input_shape(dataset["x"]), num_classes(dataset), path, device)
    return predict_logits(model, inputs, batch_size=batch)


def metric_sequences(
    samples: pd.DataFrame,
    labels: torch.Tensor,
    logits_series: Iterable[torch.Tensor],
    metric_names: Sequence[str],
) -> tuple[pd.DataFrame, torch.Tensor]:
    """The long sequence frame (``sequence_frame``) and the last model's logits.

    samples: N rows (sample_id, part, member, label); labels: (N,) int64; logits_series: T logits
    (N, C) of the snapshots then the original model, in chronological order. Each model's
    metrics (N, k) are computed as its logits arrive, so only the last logits are kept: the
    series can be a generator that queries one model at a time.
    """
    per_snapshot: list[torch.Tensor] = []
    last: torch.Tensor | None = None
    for logits in logits_series:
        per_snapshot.append(compute_metrics(logits, labels, metric_names))
        last = logits
    if last is None:
        raise ValueError("no models in the series")
    frame = sequence_frame(
        samples["sample_id"].to_numpy(),
        samples["part"].to_numpy(),
        samples["member"].to_numpy(),
        samples["label"].to_numpy(),
        per_snapshot,
        metric_names,
    )
    return frame, last


def final_logits_frame(samples: pd.DataFrame, logits: torch.Tensor) -> pd.DataFrame:
    """``samples`` (N rows) with the logits (N, C) as float32 columns ``logit_0`` …
    ``logit_{C-1}``."""
    final = logits.numpy().astype(np.float32)
    frame = samples.copy()
    for c in range(final.shape[1]):
        frame[f"logit_{c}"] = final[:, c]
    return frame


def population_frame(population: pd.DataFrame, logits: np.ndarray) -> pd.DataFrame:
    """``population`` (N rows: sample_id, label) with the logits (N, C) as columns ``logit_*``."""
    return population.assign(**{f"logit_{c}": logits[:, c] for c in range(logits.shape[1])})
