"""Partition: five disjoint parts (class-balanced or class-stratified), saved as Parquet. Around
a given target's member lists instead: ``tasks.target.partition_around_target``."""

from __future__ import annotations

from prefect import get_run_logger, task

from seqmia.base.artifacts import write_parquet
from seqmia.base.seeding import derive_seed
from seqmia.data.partition import check_disjoint, make_partition, role_counts
from seqmia.data.parts import PARTS
from seqmia.params.partition import PartitionParams
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.layout import Layout


@task(**ARTEFACT_TASK)
def partition_dataset(sizes: PartitionParams, seed: int, layout: Layout) -> dict[str, int]:
    """Deal the prepared samples into the five parts; return each part's size."""
    labels = load_prepared(layout.dataset_file)["y"]
    requested = {part: getattr(sizes, part) for part in PARTS}
    frame = make_partition(labels, requested, derive_seed(seed, "partition"), unit=sizes.unit)
    check_disjoint(frame)
    write_parquet(layout.partition_file, frame)
    counts = role_counts(frame)
    get_run_logger().info("partition of %d samples: %s", len(frame), counts)
    return counts
