"""Sequences: query every snapshot of a role on its attack samples and build metric sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from prefect import get_run_logger, task

import seqmia.params.distill  # noqa: F401 - the schema of params.distill, which it reads
import seqmia.params.sequences  # noqa: F401 - the schema of params.sequences, which it reads
from seqmia.artifacts import write_parquet
from seqmia.inference import predict_logits
from seqmia.layout import Layout
from seqmia.metrics import compute_metrics
from seqmia.params.partition import ROLES
from seqmia.params.schema import StageParams as Params
from seqmia.runtime import resolve_device
from seqmia.sequences import sequence_frame
from tasks.common import ARTEFACT_TASK, check_inputs, load_prepared
from tasks.models import attack_samples, load_model, population_samples
from tasks.target import load_given_target, query_target


def model_series(params: Params, layout: Layout, role: str) -> list[Path]:
    """Snapshots s1 … sn of ``role`` in chronological order, then the original model s(n+1)."""
    snapshots = [layout.snapshot_file(role, e) for e in range(1, params.distill.epochs + 1)]
    return [*snapshots, layout.model_file(role)]


def check_sequences_inputs(params: Params, layout: Layout) -> None:
    """Load the prepared data, the partition and every model the stage queries, before any query
    (a given target checkpoint is read its own way and is not an artefact)."""
    given = layout.model_file("target") if params.target.source == "checkpoint" else None
    models = [p for role in ROLES for p in model_series(params, layout, role) if p != given]
    check_inputs([layout.dataset_file, layout.partition_file, *models])


@task(**ARTEFACT_TASK, task_run_name="query-{role}-s{index}")
def query_model(role: str, index: int, path: Path, params: Params, layout: Layout) -> torch.Tensor:
    """Logits (N, C) of model ``path`` (snapshot ``index``) on the role's attack samples."""
    device = resolve_device(params.device)
    dataset = load_prepared(layout.dataset_file)
    samples, inputs, _ = attack_samples(layout, role)
    if role == "target" and params.target.source == "checkpoint" and index > params.distill.epochs:
        # The given target itself (the last step of the sequence): queried its own way.
        model = load_given_target(params, layout, device)
        ids = samples["sample_id"].to_numpy()
        return query_target(params, layout, model, ids, params.sequences.batch_size)
    model = load_model(params, dataset, path, device)
    return predict_logits(model, inputs, batch_size=params.sequences.batch_size)


@task(**ARTEFACT_TASK, task_run_name="write-sequences-{role}")
def write_sequences(role: str, logits: list[torch.Tensor], params: Params, layout: Layout) -> dict:
    """Metric sequences of ``role`` from each model's logits (chronological), plus the final
    model's logits for the baselines."""
    samples, _, labels = attack_samples(layout, role)
    names = list(params.sequences.metrics)
    per_snapshot = [compute_metrics(z, labels, names) for z in logits]
    frame = sequence_frame(
        samples["sample_id"].to_numpy(),
        samples["part"].to_numpy(),
        samples["member"].to_numpy(),
        samples["label"].to_numpy(),
        per_snapshot,
        names,
    )
    write_parquet(layout.sequences_file(role), frame)
    final = logits[-1].numpy().astype(np.float32)
    final_frame = samples.copy()
    for c in range(final.shape[1]):
        final_frame[f"logit_{c}"] = final[:, c]
    write_parquet(layout.final_logits_file(role), final_frame)
    get_run_logger().info(
        "%s: %d samples x %d snapshots x %d metrics", role, len(samples), len(logits), len(names)
    )
    return {"role": role, "samples": len(samples), "snapshots": len(logits)}


@task(**ARTEFACT_TASK, task_run_name="query-population-{role}")
def write_population_logits(role: str, params: Params, layout: Layout) -> dict:
    """The role's original model's logits on RMIA's population samples (black-box queries on
    the attacker's own data)."""
    device = resolve_device(params.device)
    dataset = load_prepared(layout.dataset_file)
    population, inputs, _ = population_samples(layout)
    batch = params.sequences.batch_size
    if role == "target" and params.target.source == "checkpoint":  # queried its own way
        model = load_given_target(params, layout, device)
        ids = population["sample_id"].to_numpy()
        logits = query_target(params, layout, model, ids, batch).numpy()
    else:
        model = load_model(params, dataset, layout.model_file(role), device)
        logits = predict_logits(model, inputs, batch_size=batch).numpy()
    frame = population.assign(**{f"logit_{c}": logits[:, c] for c in range(logits.shape[1])})
    write_parquet(layout.population_logits_file(role), frame)
    return {"role": role, "population": len(frame)}
