"""A given (checkpoint) target: the partition around its member lists, and its record. Only
used when ``target.source`` is ``checkpoint``; loading and querying it is ``seqmia.checkpoint``."""

from __future__ import annotations

import pandas as pd
import torch
from prefect import get_run_logger, task

from seqmia.artifacts import read_json, write_json, write_parquet
from seqmia.checkpoint import (
    EXPORTED_SUFFIX,
    architecture,
    check_target_runs,
    load_given_target,
    target_file,
    target_preprocessing,
    target_record,
)
from seqmia.data.readers import data_root
from seqmia.layout import Layout
from seqmia.members import member_lists
from seqmia.params.partition import PARTS, PartitionParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.partition import check_disjoint, given_target_partition, role_counts
from seqmia.runtime import resolve_device
from seqmia.seeding import derive_seed
from tasks.common import ARTEFACT_TASK, load_prepared


def import_export_machinery(target: TargetParams) -> None:
    """Import what loading a ``.pt2`` program needs, in the flow's thread before any task starts:
    ``torch.export.load`` imports torch._dynamo lazily, and so does the first optimiser a sibling
    task builds; two threads doing that at once can meet a half-initialised module."""
    if target.source == "checkpoint" and target.checkpoint.endswith(EXPORTED_SUFFIX):
        import torch._dynamo  # noqa: F401


@task(**ARTEFACT_TASK)
def partition_around_target(
    sizes: PartitionParams, target: TargetParams, train: TrainParams, seed: int, layout: Layout
) -> dict[str, int]:
    """Check the given target (lists, checkpoint, a trial query) before any work, then deal
    target_in/out from its member lists and the other parts from samples in neither list."""
    dataset = load_prepared(layout.dataset_file)
    files = {f"target.{k}": target_file(layout.root, getattr(target, k), f"target.{k}")
             for k in ("members", "nonmembers")}  # fmt: skip
    source = read_json(layout.dataset_info).get("source", "")
    members, nonmembers = member_lists(files, len(dataset["y"]), source, data_root())
    model = load_given_target(layout.root, target, train, dataset, torch.device("cpu"))
    check_target_runs(model, dataset, members[:2], target_preprocessing(target))
    requested = {part: getattr(sizes, part) for part in PARTS}
    frame = given_target_partition(
        dataset["y"], members, nonmembers, requested, derive_seed(seed, "partition"), sizes.unit
    )
    check_disjoint(frame)
    write_parquet(layout.partition_file, frame)
    counts = role_counts(frame)
    get_run_logger().info("given target: %d members, %d non-members listed; partition %s",
                          len(members), len(nonmembers), counts)  # fmt: skip
    return counts


@task(**ARTEFACT_TASK, task_run_name="record-target")
def record_target(target: TargetParams, train: TrainParams, device: str, layout: Layout) -> dict:
    """Validate the given target and write its report in the trained targets' format."""
    dataset = load_prepared(layout.dataset_file)
    model = load_given_target(layout.root, target, train, dataset, resolve_device(device))
    files = {k: target_file(layout.root, getattr(target, k), f"target.{k}")
             for k in ("checkpoint", "members", "nonmembers")}  # fmt: skip
    report = target_record(
        model, dataset, pd.read_parquet(layout.partition_file), target_preprocessing(target),
        architecture(target.checkpoint, target.factory, train.model), files, target.checkpoint,
        target.factory,
    )  # fmt: skip
    write_json(layout.model_report("target"), report)
    get_run_logger().info(
        "target (checkpoint %s, %s, %d parameters): accuracy %.4f on members, %.4f on "
        "non-members", target.checkpoint, report["model"], report["parameters"],
        report["train_accuracy"], report["test_accuracy"],
    )  # fmt: skip
    return {"role": "target", **{k: report[k] for k in ("train_accuracy", "test_accuracy")}}
