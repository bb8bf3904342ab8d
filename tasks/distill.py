"""Distill: recreate the training stages of the target or shadow model as per-epoch snapshots."""

from __future__ import annotations

import time

import pandas as pd
import torch
from prefect import get_run_logger, task

from seqmia.artifacts import save_state_dict
from seqmia.config import Params
from seqmia.data.samples import part_tensors
from seqmia.layout import Layout
from seqmia.partition import part_ids
from seqmia.runtime import resolve_device
from seqmia.seeding import make_generator
from seqmia.training import fit, predict_logits
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.models import (
    epoch_logger,
    load_model,
    new_model,
    recipe_from,
)
from tasks.stopping import raise_if_stopped, stop_requested
from tasks.target import load_given_target, query_target


def distill_epochs(params: Params, role: str) -> tuple[int, int]:
    """(epochs to run, leading epochs whose snapshots are dropped) for ``role``."""
    extra = params.distill.shadow_extra_epochs if role == "shadow" else 0
    return params.distill.epochs + extra, extra


@task(**ARTEFACT_TASK, task_run_name="distill-{role}")
def distill_role(role: str, params: Params, layout: Layout) -> dict:
    """Distil the ``role`` model into a fresh student on the distillation part.

    Soft labels only (the ground truth is ignored): the teacher's posteriors at
    ``distill.temperature``, computed once in eval mode. One snapshot is saved per epoch.
    """
    logger = get_run_logger()
    device = resolve_device(params.device)
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    _, x_distill, _ = part_tensors(dataset, partition, "distill")
    if role == "target" and params.target.source == "checkpoint":  # queried, never read
        teacher = load_given_target(params.target, params.train, layout, device)
        logits = query_target(params.target, layout, teacher, part_ids(partition, "distill"))
    else:
        teacher = load_model(params.train, dataset, layout.model_file(role), device)
        logits = predict_logits(teacher, x_distill)
    temperature = params.distill.temperature
    soft_targets = torch.softmax(logits / temperature, dim=1)
    del teacher

    generator = make_generator(params.seed, "distill", role)
    student = new_model(params.train, dataset, generator)
    student.to(device)
    epochs, skipped = distill_epochs(params, role)
    log = epoch_logger(logger, f"{role} distill", epochs)

    def on_epoch(stats, model) -> None:
        log(stats)
        if stats.epoch > skipped:
            raise_if_stopped()
            save_state_dict(layout.snapshot_file(role, stats.epoch - skipped), model)

    started = time.perf_counter()
    fit(
        student,
        x_distill.to(device),
        soft_targets.to(device),
        recipe_from(params.train, device, epochs=epochs),
        generator,
        temperature=temperature,
        on_epoch=on_epoch,
        should_stop=stop_requested,
    )
    seconds = time.perf_counter() - started
    logger.info("%s: %d snapshots in %.0fs", role, params.distill.epochs, seconds)
    return {"role": role, "snapshots": params.distill.epochs, "seconds": seconds}
