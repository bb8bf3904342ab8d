"""A given (checkpoint) target: load it, query it and record it. Only used when ``target.source``
is ``checkpoint``; the partition around its member lists is ``tasks.partition``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger, task

from seqmia.artifacts import write_json
from seqmia.checkpoint import (
    EXPORTED_SUFFIX,
    Preprocessing,
    architecture,
    load_factory,
    load_target,
    target_file,
    target_input,
    target_logits,
    target_record,
)
from seqmia.classifier import new_model
from seqmia.data.inputs import num_classes
from seqmia.layout import Layout
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.runtime import resolve_device
from seqmia.seeding import make_generator
from tasks.common import ARTEFACT_TASK, load_prepared


def import_export_machinery(target: TargetParams) -> None:
    """Import what loading a ``.pt2`` program needs, in the flow's thread before any task starts:
    ``torch.export.load`` imports torch._dynamo lazily, and so does the first optimiser a sibling
    task builds; two threads doing that at once can meet a half-initialised module."""
    if target.source == "checkpoint" and target.checkpoint.endswith(EXPORTED_SUFFIX):
        import torch._dynamo  # noqa: F401


def preprocessing(target: TargetParams) -> Preprocessing:
    """The input preprocessing the target expects (``target.*``)."""
    return Preprocessing(target.mean, target.std, target.resize, target.channels)


def load_given_target(
    target: TargetParams, train: TrainParams, layout: Layout, device: torch.device
) -> torch.nn.Module:
    """The checkpoint target, loaded (weights only for state dicts) and ready to query."""
    dataset = load_prepared(layout.dataset_file)
    path = target_file(layout.root, target.checkpoint, "target.checkpoint")
    if target.factory:
        build = load_factory(target.factory)
    else:  # built for the input the target takes, which its preprocessing may resize
        shape = tuple(target_input(dataset, np.arange(1), preprocessing(target)).shape[1:])
        classes = num_classes(dataset)
        build = lambda: new_model(train, shape, classes, make_generator(0, "load"))  # noqa: E731
    name = architecture(target.checkpoint, target.factory, train.model)
    return load_target(path, build, name, device)


def query_target(
    target: TargetParams, layout: Layout, model: torch.nn.Module, ids: np.ndarray, batch: int = 500
) -> torch.Tensor:
    """Logits (n, classes) of the given target on samples ``ids``, preprocessed its way."""
    inputs = target_input(load_prepared(layout.dataset_file), ids, preprocessing(target))
    return target_logits(model, inputs, batch)


@task(**ARTEFACT_TASK, task_run_name="record-target")
def record_target(target: TargetParams, train: TrainParams, device: str, layout: Layout) -> dict:
    """Validate the given target and write its report in the trained targets' format."""
    model = load_given_target(target, train, layout, resolve_device(device))
    files = {k: target_file(layout.root, getattr(target, k), f"target.{k}")
             for k in ("checkpoint", "members", "nonmembers")}  # fmt: skip
    report = target_record(
        model, load_prepared(layout.dataset_file), pd.read_parquet(layout.partition_file),
        preprocessing(target), architecture(target.checkpoint, target.factory, train.model),
        files, target.checkpoint, target.factory,
    )  # fmt: skip
    write_json(layout.model_report("target"), report)
    get_run_logger().info(
        "target (checkpoint %s, %s, %d parameters): accuracy %.4f on members, %.4f on "
        "non-members", target.checkpoint, report["model"], report["parameters"],
        report["train_accuracy"], report["test_accuracy"],
    )  # fmt: skip
    return {"role": "target", **{k: report[k] for k in ("train_accuracy", "test_accuracy")}}
