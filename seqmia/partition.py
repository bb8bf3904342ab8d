"""Stage 0: five disjoint, class-balanced parts of one dataset, drawn from one seed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from seqmia.config import PARTS
from seqmia.errors import UserError


class PartitionError(UserError, ValueError):
    """The dataset cannot supply the requested part sizes."""


def make_partition(labels: np.ndarray, per_class: Mapping[str, int], seed: int) -> pd.DataFrame:
    """Assign samples to the parts in ``PARTS``, ``per_class[part]`` of every class each.

    labels: (N,) int class index of every sample. Samples of each class are shuffled with a
    generator seeded by ``seed`` and dealt out in the order of ``PARTS``; samples left over get
    no role and are not listed. Returns a frame with columns ``sample_id`` (index into
    ``labels``), ``label`` and ``role`` (one of ``PARTS``), sorted by role then sample id.
    """
    missing = [p for p in PARTS if p not in per_class]
    if missing:
        raise PartitionError(f"no size given for parts {missing}")
    need = sum(per_class[p] for p in PARTS)
    rng = np.random.default_rng(seed)
    rows: list[pd.DataFrame] = []
    for label in np.unique(labels):
        ids = np.flatnonzero(labels == label)
        if len(ids) < need:
            sizes = ", ".join(f"{p}={per_class[p]}" for p in PARTS)
            raise PartitionError(
                f"class {label} has {len(ids)} samples but the partition asks for {need} per class "
                f"({sizes}); lower the partition.* sizes"
            )
        ids = rng.permutation(ids)
        start = 0
        for part in PARTS:
            take = ids[start : start + per_class[part]]
            start += per_class[part]
            rows.append(pd.DataFrame({"sample_id": take, "label": label, "role": part}))
    frame = pd.concat(rows, ignore_index=True)
    frame["sample_id"] = frame["sample_id"].astype(np.int64)
    frame["label"] = frame["label"].astype(np.int64)
    frame["role"] = pd.Categorical(frame["role"], categories=list(PARTS))
    return frame.sort_values(["role", "sample_id"], kind="stable").reset_index(drop=True)


def part_ids(partition: pd.DataFrame, part: str) -> np.ndarray:
    """Sample ids of ``part``, in the partition's order. (n_part,) int64."""
    return partition.loc[partition["role"] == part, "sample_id"].to_numpy(np.int64)


def check_disjoint(partition: pd.DataFrame) -> None:
    """Raise if any sample id appears in more than one part."""
    dup = partition["sample_id"].duplicated(keep=False)
    if dup.any():
        raise PartitionError(f"{int(dup.sum())} rows share a sample id across parts")
