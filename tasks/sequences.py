"""Sequences: query every snapshot of a role on its attack samples and build metric sequences."""

from __future__ import annotations

import time

import pandas as pd
from prefect import get_run_logger, task

from seqmia.attacks.seqmia.frames import final_logits_frame, population_frame
from seqmia.attacks.seqmia.sequences import metric_sequences, model_logits
from seqmia.base.artifacts import write_parquet
from seqmia.base.runtime import resolve_device
from seqmia.base.stopping import raise_if_stopped
from seqmia.data.parts import ROLES
from seqmia.data.samples import attack_samples, population_samples
from seqmia.params.dp import DpParams
from seqmia.params.sequences import SequencesParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import GivenTarget
from tasks import sections
from tasks.common import ARTEFACT_TASK, check_inputs, load_prepared, record_timing
from tasks.layout import Layout


def check_sequences_inputs(epochs: int, target: TargetParams, layout: Layout) -> None:
    """Load the prepared data, the partition and every model the stage queries, before any query
    (a given target checkpoint is read its own way and is not an artefact)."""
    given = layout.model_file("target") if target.source == "checkpoint" else None
    models = [p for role in ROLES for p in layout.model_series(role, epochs) if p != given]
    check_inputs([layout.dataset_file, layout.partition_file, *models])


def given_target(
    role: str, target: TargetParams, train: TrainParams, layout: Layout
) -> GivenTarget | None:
    """The given target when ``role``'s original model is a given checkpoint, else None."""
    if role == "target" and target.source == "checkpoint":
        return sections.given_target(target, train, layout.root)
    return None


@task(**ARTEFACT_TASK, task_run_name="sequences-{role}")
def write_sequences(
    role: str,
    epochs: int,
    sequences: SequencesParams,
    target: TargetParams,
    train: TrainParams,
    dp: DpParams,
    device: str,
    layout: Layout,
) -> dict:
    """Metric sequences of ``role`` from each model of its series, queried one at a time, plus the
    final model's logits for the baselines."""
    dataset, partition = load_prepared(layout.dataset_file), pd.read_parquet(layout.partition_file)
    samples, inputs, labels = attack_samples(dataset, partition, role)
    ids, series = samples["sample_id"].to_numpy(), layout.model_series(role, epochs)
    given, dev = given_target(role, target, train, layout), resolve_device(device)
    architecture = sections.architecture(train, dp)
    started = time.perf_counter()
    logits = (
        model_logits(
            p,
            architecture,
            dataset,
            inputs,
            ids,
            sequences.batch_size,
            dev,
            given if p == series[-1] else None,
        )
        for p in series
    )
    frame, final = metric_sequences(samples, labels, logits, list(sequences.metrics))
    record_timing(f"sequences {role}", time.perf_counter() - started)  # the queries run lazily here
    raise_if_stopped()
    write_parquet(layout.sequences_file(role), frame)
    write_parquet(layout.final_logits_file(role), final_logits_frame(samples, final))
    get_run_logger().info(
        "%s: %d samples x %d snapshots x %d metrics",
        role,
        len(samples),
        len(series),
        len(sequences.metrics),
    )
    return {"role": role, "samples": len(samples), "snapshots": len(series)}


@task(**ARTEFACT_TASK, task_run_name="query-population-{role}")
def write_population_logits(
    role: str,
    sequences: SequencesParams,
    target: TargetParams,
    train: TrainParams,
    dp: DpParams,
    device: str,
    layout: Layout,
) -> dict:
    """The role's original model's logits on RMIA's population samples (black-box queries on
    the attacker's own data)."""
    dataset, partition = load_prepared(layout.dataset_file), pd.read_parquet(layout.partition_file)
    population, inputs, _ = population_samples(dataset, partition)
    logits = model_logits(
        layout.model_file(role),
        sections.architecture(train, dp),
        dataset,
        inputs,
        population["sample_id"].to_numpy(),
        sequences.batch_size,
        resolve_device(device),
        given_target(role, target, train, layout),
    ).numpy()
    raise_if_stopped()
    write_parquet(layout.population_logits_file(role), population_frame(population, logits))
    return {"role": role, "population": len(population)}
