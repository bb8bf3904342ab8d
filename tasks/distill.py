"""Distill: recreate the training stages of the target or shadow model as per-epoch snapshots."""

from __future__ import annotations

import time

import pandas as pd
from prefect import get_run_logger, task

from seqmia.base.artifacts import save_state_dict
from seqmia.base.runtime import resolve_device
from seqmia.base.seeding import make_generator
from seqmia.base.stopping import raise_if_stopped, stop_requested
from seqmia.data.batches import stored_inputs
from seqmia.data.inputs import input_shape
from seqmia.data.partition import part_ids
from seqmia.models.build import load_model, new_model
from seqmia.params.distill import DistillParams
from seqmia.params.dp import DpParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import load_given_target, query_given_target
from seqmia.training.classifier import epoch_logger
from seqmia.training.distill import distill, distill_epochs
from tasks import sections
from tasks.common import ARTEFACT_TASK, load_prepared, record_timing
from tasks.layout import Layout


@task(**ARTEFACT_TASK, task_run_name="distill-{role}")
def distill_role(
    role: str,
    train: TrainParams,
    dp: DpParams,
    distill_params: DistillParams,
    seed: int,
    device: str,
    layout: Layout,
    given: TargetParams | None = None,
) -> dict:
    """Distil the ``role`` model into a fresh student on the distillation part, saving one
    snapshot per kept epoch. ``given``: the ``target`` section when the target is a given
    checkpoint (queried through its own preprocessing, never read as weights)."""
    logger, device = get_run_logger(), resolve_device(device)
    dataset = load_prepared(layout.dataset_file)
    ids = part_ids(pd.read_parquet(layout.partition_file), "distill")
    inputs, _ = stored_inputs(dataset, ids, device)  # the labels are never used
    shape, classes = input_shape(dataset["x"]), len(dataset["classes"])
    architecture = sections.architecture(train, dp)  # the students train without DP-SGD
    if role == "target" and given is not None:
        target = sections.given_target(given, train, layout.root)
        teacher = query_given_target(
            target, dataset, load_given_target(target, dataset, device), ids
        )
    else:
        teacher = load_model(architecture, shape, classes, layout.model_file(role), device)
    generator = make_generator(seed, "distill", role)
    student = new_model(architecture, shape, classes, generator).to(device)
    epochs, skipped = distill_epochs(
        distill_params.epochs, distill_params.shadow_extra_epochs, role
    )

    def save(index, model) -> None:
        raise_if_stopped()
        save_state_dict(layout.snapshot_file(role, index), model)

    started = time.perf_counter()
    distill(
        student,
        teacher,
        inputs,
        sections.recipe(train, epochs=epochs),
        generator,
        temperature=distill_params.temperature,
        skipped=skipped,
        on_snapshot=save,
        on_epoch=epoch_logger(logger, f"{role} distill", epochs),
        should_stop=stop_requested,
        options=sections.fit_options(train, device),
    )
    seconds = time.perf_counter() - started
    record_timing(f"distill {role}", seconds)
    logger.info("%s: %d snapshots in %.0fs", role, distill_params.epochs, seconds)
    return {"role": role, "snapshots": distill_params.epochs, "seconds": seconds}
