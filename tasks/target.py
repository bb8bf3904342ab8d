"""A given (checkpoint) target: its record in the trained targets' format. Only used when
``target.source`` is ``checkpoint``; loading and querying it is ``seqmia.target.checkpoint``, the
partition around its member lists ``tasks.target_partition``."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from seqmia.base.artifacts import write_json
from seqmia.base.runtime import resolve_device
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import load_given_target, target_record
from seqmia.target.files import EXPORTED_SUFFIX, target_file
from tasks import sections
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.layout import Layout


def import_export_machinery(target: TargetParams) -> None:
    """Import what loading a ``.pt2`` program needs, in the flow's thread before any task starts:
    ``torch.export.load`` imports torch._dynamo lazily, and so does the first optimiser a sibling
    task builds; two threads doing that at once can meet a half-initialised module."""
    if target.source == "checkpoint" and target.checkpoint.endswith(EXPORTED_SUFFIX):
        import torch._dynamo  # noqa: F401


@task(**ARTEFACT_TASK, task_run_name="record-target")
def record_target(target: TargetParams, train: TrainParams, device: str, layout: Layout) -> dict:
    """Validate the given target and write its report in the trained targets' format."""
    dataset = load_prepared(layout.dataset_file)
    given = sections.given_target(target, train, layout.root)
    model = load_given_target(given, dataset, resolve_device(device))
    files = {
        k: target_file(layout.root, getattr(target, k), f"target.{k}")
        for k in ("checkpoint", "members", "nonmembers")
    }
    report = target_record(
        model,
        dataset,
        pd.read_parquet(layout.partition_file),
        given.preprocessing,
        given.name,
        files,
        target.checkpoint,
        target.factory,
    )
    write_json(layout.model_report("target"), report)
    get_run_logger().info(
        "target (checkpoint %s, %s, %d parameters): accuracy %.4f on members, %.4f on non-members",
        target.checkpoint,
        report["model"],
        report["parameters"],
        report["train_accuracy"],
        report["test_accuracy"],
    )
    return {"role": "target", **{k: report[k] for k in ("train_accuracy", "test_accuracy")}}
