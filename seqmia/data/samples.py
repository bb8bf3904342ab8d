"""The samples of one part of the partition as model inputs: what the train, reference, distill
and sequences stages feed their models."""

from __future__ import annotations

import mmap

import numpy as np
import pandas as pd
import torch

from seqmia.data.inputs import to_model_input
from seqmia.data.partition import part_ids

# RMIA's population samples z: the attacker's distillation part, which the attacker queries the
# audited model on anyway and which no target, shadow or reference model trains on.
POPULATION_PART = "distill"


def sample_tensors(
    dataset: dict[str, np.ndarray], ids: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs (n, C, H, W) or (n, D) and labels (n,) int64 of the samples ``ids`` (n,)
    of the prepared ``dataset`` (``x``, ``y``, ``mean``, ``std``)."""
    rows = gather_rows(dataset["x"], ids)
    x = to_model_input(rows, dataset["mean"], dataset["std"])
    y = torch.from_numpy(dataset["y"][ids].astype(np.int64))
    return x, y


def release_pages(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped ``array`` (a view of an ``np.memmap``, as
    ``seqmia.base.artifacts.load_npz`` gives) from this process's resident memory; nothing for an
    array in memory. The rows just copied out are not read again, and a later read faults the
    pages back in from the page cache with the same bytes. On the default data the pages of the
    rows of both roles' attack samples are about 150 MB of the sequences stage's peak."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    mapped = getattr(base, "_mmap", None)
    if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def gather_rows(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """A copy of the rows ``ids`` (n,) of ``x`` (N, ...), after which the pages of a
    memory-mapped ``x`` are dropped (``release_pages``): the kernel maps pages around every row
    read whatever the access advice (fault-around), so a scattered gather would otherwise leave
    nearly the whole file resident and counted in the stage's peak memory."""
    rows = x[ids]
    release_pages(x)
    return rows


def part_tensors(
    dataset: dict[str, np.ndarray], partition: pd.DataFrame, part: str
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Sample ids (n,), normalised inputs (n, C, H, W) or (n, D) and labels (n,) of one part."""
    ids = part_ids(partition, part)
    return (ids, *sample_tensors(dataset, ids))


def attack_samples(
    dataset: dict[str, np.ndarray], partition: pd.DataFrame, role: str
) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """The role's members then non-members: a table (sample_id, part, member, label) of n rows,
    inputs (n, ...) and labels (n,)."""
    parts = ((f"{role}_in", 1), (f"{role}_out", 0))
    ids = [part_ids(partition, part) for part, _ in parts]
    # One conversion of all rows: no second copy of the inputs from concatenating two parts.
    x, y = sample_tensors(dataset, np.concatenate(ids))
    table = pd.concat(
        [
            pd.DataFrame({"sample_id": i, "part": part, "member": member})
            for i, (part, member) in zip(ids, parts, strict=True)
        ],
        ignore_index=True,
    )
    table["label"] = y.numpy()
    return table, x, y


def population_samples(
    dataset: dict[str, np.ndarray], partition: pd.DataFrame
) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """RMIA's population: a table (sample_id, label) of n rows, inputs (n, ...) and labels (n,)
    of the distillation part."""
    ids, x, y = part_tensors(dataset, partition, POPULATION_PART)
    return pd.DataFrame({"sample_id": ids, "label": y.numpy()}), x, y
