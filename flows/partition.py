"""Stage partition: five disjoint class-balanced parts in data/partition.parquet."""

from prefect import flow

from flows._stage import run, setup
from tasks.partition import partition_dataset


@flow(name="partition")
def partition_flow(params_file: str = "params.yaml") -> dict:
    """Deal the prepared samples into target/shadow members and non-members and distillation."""
    params, layout = setup(params_file)
    if params.target.source == "checkpoint":  # a given target: its member lists fix its parts
        # Imported here: only a given target needs torch, so the usual run does not pay for it.
        from tasks.target_partition import partition_around_target

        return partition_around_target(
            params.partition, params.target, params.train, params.seed, layout
        )
    return partition_dataset(params.partition, params.seed, layout)


if __name__ == "__main__":
    run(partition_flow, __doc__)
