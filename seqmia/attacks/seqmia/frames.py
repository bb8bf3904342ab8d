"""The tables stage 3 stores and later stages read: metric sequences, stored long (one row per
sample and snapshot), and a model's logits on samples.

Long format keeps one schema whatever the number of snapshots n and metrics k:
``sample_id, part, member, label, snapshot, <metric 1>, …, <metric k>`` where ``snapshot`` runs
1 … n+1 in chronological order and n+1 is the original (target or shadow) model. Logit tables
are the samples' columns followed by ``logit_0`` … ``logit_{C-1}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

ID_COLUMNS = ("sample_id", "part", "member", "label", "snapshot")


def sequence_frame(
    sample_ids: np.ndarray,
    parts: np.ndarray,
    members: np.ndarray,
    labels: np.ndarray,
    per_snapshot: Sequence[torch.Tensor],
    metric_names: Sequence[str],
) -> pd.DataFrame:
    """Long frame from the metric matrix of each snapshot.

    sample_ids, parts, members, labels: (N,). per_snapshot: T tensors of shape (N, k), in
    chronological order. Returns N*T rows sorted by sample id, then snapshot.
    """
    values = torch.stack(list(per_snapshot), dim=1).cpu().numpy()  # (N, T, k)
    n, t, k = values.shape
    if k != len(metric_names):
        raise ValueError(f"{k} metric columns but {len(metric_names)} names")
    frame = pd.DataFrame(
        {
            "sample_id": np.repeat(np.asarray(sample_ids, dtype=np.int64), t),
            "part": np.repeat(np.asarray(parts), t),
            "member": np.repeat(np.asarray(members, dtype=np.int8), t),
            "label": np.repeat(np.asarray(labels, dtype=np.int64), t),
            "snapshot": np.tile(np.arange(1, t + 1, dtype=np.int16), n),
        }
    )
    for j, name in enumerate(metric_names):
        frame[name] = values[:, :, j].reshape(-1).astype(np.float64)
    return frame.sort_values(["sample_id", "snapshot"], kind="stable").reset_index(drop=True)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a sequence frame, in stored order."""
    return [c for c in frame.columns if c not in ID_COLUMNS]


def frame_to_arrays(
    frame: pd.DataFrame, metric_names: Sequence[str] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-sample table and the (N, T, k) float64 sequence array, rows in the same order.

    The table has one row per sample: sample_id, part, member, label.
    """
    names = list(metric_names) if metric_names is not None else metric_columns(frame)
    frame = frame.sort_values(["sample_id", "snapshot"], kind="stable")
    t = int(frame["snapshot"].max())
    n = len(frame) // t
    ragged = ValueError("sequence frame is ragged: not every sample has snapshots 1..T once")
    if n * t != len(frame):
        raise ragged
    snapshots = frame["snapshot"].to_numpy().reshape(n, t)
    ids = frame["sample_id"].to_numpy().reshape(n, t)
    if (snapshots != np.arange(1, t + 1)).any() or (ids != ids[:, :1]).any():
        raise ragged
    values = frame[names].to_numpy(np.float64).reshape(n, t, len(names))
    samples = frame.iloc[::t][["sample_id", "part", "member", "label"]].reset_index(drop=True)
    return samples, values


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
