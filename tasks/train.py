"""Train: the target or shadow model on its member part (one code path, a role argument)."""

from __future__ import annotations

import time

import pandas as pd
from prefect import get_run_logger, task

from seqmia.base.artifacts import save_state_dict, write_json
from seqmia.base.runtime import resolve_device
from seqmia.base.seeding import make_generator
from seqmia.base.stopping import raise_if_stopped, stop_requested
from seqmia.data.batches import stored_inputs
from seqmia.data.inputs import input_shape
from seqmia.data.partition import part_ids
from seqmia.models.build import new_model
from seqmia.params.dp import DpParams
from seqmia.params.train import TrainParams
from seqmia.training.classifier import epoch_logger, train_classifier
from tasks import sections
from tasks.common import ARTEFACT_TASK, load_prepared, record_timing
from tasks.layout import Layout


@task(**ARTEFACT_TASK, task_run_name="train-{role}")
def train_role(
    role: str, train: TrainParams, dp: DpParams, seed: int, device: str, layout: Layout
) -> dict:
    """Train the ``role`` model on ``<role>_in`` (with DP-SGD if ``dp.enabled``); save weights
    and a report with accuracies on ``<role>_in`` and ``<role>_out`` (and the ε spent)."""
    logger, device = get_run_logger(), resolve_device(device)
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    members, held_out = (
        stored_inputs(dataset, part_ids(partition, f"{role}_{side}"), device)
        for side in ("in", "out")
    )
    generator = make_generator(seed, "train", role)
    shape, classes = input_shape(dataset["x"]), len(dataset["classes"])
    private = sections.private_plan(dp, train, len(members[1]))
    model = new_model(sections.architecture(train, dp), shape, classes, generator).to(device)
    logger.info("%s: %s on %s, %d training samples", role, train.model, device, len(members[1]))
    if private is not None:
        logger.info("%s: DP-SGD, %s", role, private)
    started = time.perf_counter()
    model, report = train_classifier(
        model,
        members,
        held_out,
        sections.recipe(train),
        generator,
        on_epoch=epoch_logger(logger, f"{role} train", train.epochs),
        should_stop=stop_requested,
        options=sections.fit_options(train, device, private),
    )
    record_timing(f"{role} train", time.perf_counter() - started)
    logger.info(
        "%s: train accuracy %.4f, test accuracy %.4f%s",
        role,
        report["train_accuracy"],
        report["test_accuracy"],
        f", ε spent {report['dp']['epsilon_spent']:.3f}" if "dp" in report else "",
    )
    raise_if_stopped()
    save_state_dict(layout.model_file(role), model)
    write_json(layout.model_report(role), {"role": role, "model": train.model, **report})
    return {"role": role, **{k: report[k] for k in ("train_accuracy", "test_accuracy")}}
