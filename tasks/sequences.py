"""Sequences: query every snapshot of a role on its attack samples and build metric sequences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task

from seqmia.artifacts import write_parquet
from seqmia.checkpoint import load_given_target, query_given_target
from seqmia.classifier import load_model
from seqmia.data.inputs import input_shape, num_classes
from seqmia.data.samples import attack_samples, population_samples
from seqmia.inference import predict_logits
from seqmia.layout import Layout
from seqmia.params.partition import ROLES
from seqmia.params.sequences import SequencesParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.querying import final_logits_frame, metric_sequences, population_frame
from seqmia.runtime import resolve_device
from tasks.common import ARTEFACT_TASK, check_inputs, load_prepared


def model_series(epochs: int, layout: Layout, role: str) -> list[Path]:
    """Snapshots s1 … sn (n = ``epochs``) of ``role`` in chronological order, then the original
    model s(n+1)."""
    return [*(layout.snapshot_file(role, e) for e in range(1, epochs + 1)), layout.model_file(role)]


def check_sequences_inputs(epochs: int, target: TargetParams, layout: Layout) -> None:
    """Load the prepared data, the partition and every model the stage queries, before any query
    (a given target checkpoint is read its own way and is not an artefact)."""
    given = layout.model_file("target") if target.source == "checkpoint" else None
    models = [p for role in ROLES for p in model_series(epochs, layout, role) if p != given]
    check_inputs([layout.dataset_file, layout.partition_file, *models])


def query(path: Path, role: str, ids, inputs, target: TargetParams, train: TrainParams,
          device: str, batch: int, layout: Layout):  # fmt: skip
    """Logits (N, C) of the model at ``path`` on ``inputs`` (N, ...); the given target (its
    original model, when ``target.source`` is checkpoint) queried its own way on samples ``ids``."""
    dataset, dev = load_prepared(layout.dataset_file), resolve_device(device)
    if role == "target" and target.source == "checkpoint" and path == layout.model_file(role):
        model = load_given_target(layout.root, target, train, dataset, dev)
        return query_given_target(target, dataset, model, ids, batch)
    model = load_model(train, input_shape(dataset["x"]), num_classes(dataset), path, dev)
    return predict_logits(model, inputs, batch_size=batch)


@task(**ARTEFACT_TASK, task_run_name="sequences-{role}")
def write_sequences(role: str, epochs: int, sequences: SequencesParams, target: TargetParams,
                    train: TrainParams, device: str, layout: Layout) -> dict:  # fmt: skip
    """Metric sequences of ``role`` from each model of its series, queried one at a time, plus the
    final model's logits for the baselines."""
    dataset, partition = load_prepared(layout.dataset_file), pd.read_parquet(layout.partition_file)
    samples, inputs, labels = attack_samples(dataset, partition, role)
    ids, series = samples["sample_id"].to_numpy(), model_series(epochs, layout, role)
    logits = (query(p, role, ids, inputs, target, train, device, sequences.batch_size, layout)
              for p in series)  # fmt: skip
    frame, final = metric_sequences(samples, labels, logits, list(sequences.metrics))
    write_parquet(layout.sequences_file(role), frame)
    write_parquet(layout.final_logits_file(role), final_logits_frame(samples, final))
    get_run_logger().info("%s: %d samples x %d snapshots x %d metrics",
                          role, len(samples), len(series), len(sequences.metrics))  # fmt: skip
    return {"role": role, "samples": len(samples), "snapshots": len(series)}


@task(**ARTEFACT_TASK, task_run_name="query-population-{role}")
def write_population_logits(role: str, sequences: SequencesParams, target: TargetParams,
                            train: TrainParams, device: str, layout: Layout) -> dict:  # fmt: skip
    """The role's original model's logits on RMIA's population samples (black-box queries on
    the attacker's own data)."""
    dataset, partition = load_prepared(layout.dataset_file), pd.read_parquet(layout.partition_file)
    population, inputs, _ = population_samples(dataset, partition)
    ids = population["sample_id"].to_numpy()
    logits = query(layout.model_file(role), role, ids, inputs, target, train, device,
                   sequences.batch_size, layout).numpy()  # fmt: skip
    write_parquet(layout.population_logits_file(role), population_frame(population, logits))
    return {"role": role, "population": len(population)}
