"""Train: the target or shadow model on its member part (one code path, a role argument)."""

from __future__ import annotations

import time

import pandas as pd
from prefect import get_run_logger, task

from seqmia.artifacts import save_state_dict, write_json
from seqmia.config import Params
from seqmia.layout import Layout
from seqmia.models import count_parameters
from seqmia.runtime import resolve_device
from seqmia.seeding import make_generator
from seqmia.training import accuracy, fit, predict_logits
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.models import (
    epoch_logger,
    new_model,
    part_tensors,
    recipe_from,
)


@task(**ARTEFACT_TASK, task_run_name="train-{role}")
def train_role(role: str, params: Params, layout: Layout) -> dict:
    """Train the ``role`` model on ``<role>_in``; save weights and a report with accuracies."""
    logger = get_run_logger()
    device = resolve_device(params.device)
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    _, x_in, y_in = part_tensors(dataset, partition, f"{role}_in")
    _, x_out, y_out = part_tensors(dataset, partition, f"{role}_out")
    generator = make_generator(params.seed, "train", role)
    model = new_model(params, dataset, generator)
    model.to(device)
    logger.info(
        "%s: %s (%d parameters) on %s, %d training samples",
        role, params.train.model, count_parameters(model), device, len(y_in),
    )  # fmt: skip
    history: list[dict] = []
    log = epoch_logger(logger, f"{role} train", params.train.epochs)

    def on_epoch(stats, _model) -> None:
        history.append(vars(stats))
        log(stats)

    started = time.perf_counter()
    fit(
        model,
        x_in.to(device),
        y_in.to(device),
        recipe_from(params.train),
        generator,
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - started
    report = {
        "role": role,
        "model": params.train.model,
        "parameters": count_parameters(model),
        "train_accuracy": accuracy(predict_logits(model, x_in), y_in),
        "test_accuracy": accuracy(predict_logits(model, x_out), y_out),
        "train_samples": len(y_in),
        "seconds": seconds,
        "history": history,
    }
    save_state_dict(layout.model_file(role), model)
    write_json(layout.model_report(role), report)
    logger.info(
        "%s: train accuracy %.4f, test accuracy %.4f, %.0fs",
        role, report["train_accuracy"], report["test_accuracy"], seconds,
    )  # fmt: skip
    return {k: report[k] for k in ("role", "train_accuracy", "test_accuracy", "seconds")}
