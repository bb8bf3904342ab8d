"""Partition around a given (checkpoint) target: its member lists fix target_in and target_out,
the other parts are dealt from samples in neither list. Only used when ``target.source`` is
``checkpoint``, and imported only then: it is the one partition path that needs torch."""

from __future__ import annotations

import torch
from prefect import get_run_logger, task

from seqmia.base.artifacts import read_json, write_parquet
from seqmia.base.seeding import derive_seed
from seqmia.data.partition import check_disjoint, given_target_partition, role_counts
from seqmia.data.parts import PARTS
from seqmia.data.readers import data_root
from seqmia.params.partition import PartitionParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import check_target_runs, load_given_target
from seqmia.target.files import target_file
from seqmia.target.members import member_lists
from tasks import sections
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.layout import Layout


@task(**ARTEFACT_TASK)
def partition_around_target(
    sizes: PartitionParams, target: TargetParams, train: TrainParams, seed: int, layout: Layout
) -> dict[str, int]:
    """Check the given target (lists, checkpoint, a trial query) before any work, then deal
    target_in/out from its member lists and the other parts from samples in neither list."""
    dataset = load_prepared(layout.dataset_file)
    files = {
        f"target.{k}": target_file(layout.root, getattr(target, k), f"target.{k}")
        for k in ("members", "nonmembers")
    }
    source = read_json(layout.dataset_info).get("source", "")
    members, nonmembers = member_lists(files, len(dataset["y"]), source, data_root())
    given = sections.given_target(target, train, layout.root)
    model = load_given_target(given, dataset, torch.device("cpu"))
    check_target_runs(model, dataset, members[:2], given.preprocessing)
    requested = {part: getattr(sizes, part) for part in PARTS}
    frame = given_target_partition(
        dataset["y"], members, nonmembers, requested, derive_seed(seed, "partition"), sizes.unit
    )
    check_disjoint(frame)
    write_parquet(layout.partition_file, frame)
    counts = role_counts(frame)
    get_run_logger().info(
        "given target: %d members, %d non-members listed; partition %s",
        len(members),
        len(nonmembers),
        counts,
    )
    return counts
