"""Data-side helpers of the stages' tasks, and the model builders on a prepared dataset (thin
adapters onto ``seqmia.classifier`` for the tasks that still call them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqmia import classifier
from seqmia.data import input_shape as sample_shape
from seqmia.data import to_model_input
from seqmia.layout import Layout
from seqmia.params.schema import StageParams as Params
from seqmia.partition import part_ids
from tasks.common import load_prepared


def part_tensors(
    dataset: dict[str, np.ndarray], partition: pd.DataFrame, part: str
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Sample ids (n,), normalised inputs (n, C, H, W) or (n, D) and labels (n,) of one part."""
    ids = part_ids(partition, part)
    return (ids, *sample_tensors(dataset, ids))


def sample_tensors(
    dataset: dict[str, np.ndarray], ids: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs (n, C, H, W) or (n, D) and labels (n,) of the samples ``ids`` (n,)."""
    x = to_model_input(dataset["x"][ids], dataset["mean"], dataset["std"])
    y = torch.from_numpy(dataset["y"][ids].astype(np.int64))
    return x, y


def attack_samples(layout: Layout, role: str) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """The role's members then non-members: a table (sample_id, part, member, label), inputs and
    labels."""
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    tables, inputs, labels = [], [], []
    for part, member in ((f"{role}_in", 1), (f"{role}_out", 0)):
        ids, x, y = part_tensors(dataset, partition, part)
        tables.append(pd.DataFrame({"sample_id": ids, "part": part, "member": member, "label": y}))
        inputs.append(x)
        labels.append(y)
    return pd.concat(tables, ignore_index=True), torch.cat(inputs), torch.cat(labels)


# RMIA's population samples z: the attacker's distillation part, which the attacker queries the
# audited model on anyway and which no target, shadow or reference model trains on.
POPULATION_PART = "distill"


def population_samples(layout: Layout) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """RMIA's population: a table (sample_id, label), inputs and labels of the distillation part."""
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    ids, x, y = part_tensors(dataset, partition, POPULATION_PART)
    return pd.DataFrame({"sample_id": ids, "label": y.numpy()}), x, y


def input_shape(dataset: dict[str, np.ndarray]) -> tuple[int, ...]:
    """(C, H, W) of the prepared images, (D,) of prepared feature vectors."""
    return sample_shape(dataset["x"])


def num_classes(dataset: dict[str, np.ndarray]) -> int:
    """Number of classes of the prepared dataset."""
    return len(dataset["classes"])


def new_model(
    params: Params,
    dataset: dict[str, np.ndarray],
    generator: torch.Generator,
    shape: tuple[int, ...] | None = None,
):
    """``seqmia.classifier.new_model`` for this dataset; ``shape`` overrides the input shape (a
    given target's own preprocessing)."""
    shape = input_shape(dataset) if shape is None else shape
    return classifier.new_model(params.train, shape, num_classes(dataset), generator)


def load_model(
    params: Params, dataset: dict[str, np.ndarray], path: Path, device: torch.device
) -> torch.nn.Module:
    """``seqmia.classifier.load_model`` for this dataset."""
    return classifier.load_model(
        params.train, input_shape(dataset), num_classes(dataset), path, device
    )
