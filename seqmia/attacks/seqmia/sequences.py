"""Stage 3: a series of models (the snapshots, then the original model) queried on the attack
samples, their logits turned into metric sequences as they arrive."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqmia.attacks.seqmia.frames import sequence_frame
from seqmia.attacks.seqmia.metrics import compute_metrics
from seqmia.data.inputs import input_shape, num_classes
from seqmia.models.build import load_model
from seqmia.models.inference import predict_logits
from seqmia.models.registry import Architecture
from seqmia.target.checkpoint import GivenTarget, load_given_target, query_given_target


def model_logits(
    path: Path,
    architecture: Architecture,
    dataset: dict[str, np.ndarray],
    inputs: torch.Tensor,
    ids: np.ndarray,
    batch: int,
    device: torch.device,
    given: GivenTarget | None = None,
) -> torch.Tensor:
    """Logits (N, C) of the ``architecture`` saved at ``path`` on ``inputs`` (N, ...), ``batch``
    samples at a time. With ``given`` (a checkpoint target), of that target instead: loaded from
    its files and queried its own way on the prepared samples ``ids`` (N,)."""
    if given is not None:
        model = load_given_target(given, dataset, device)
        return query_given_target(given, dataset, model, ids, batch)
    model = load_model(architecture, input_shape(dataset["x"]), num_classes(dataset), path, device)
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
