"""Stage distill: per-epoch snapshots of target and shadow students into data/snapshots/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows._stage import run, setup
from seqmia.data.parts import ROLES
from tasks.common import check_inputs
from tasks.distill import distill_role
from tasks.stopping import results_or_stop
from tasks.target import import_export_machinery


@flow(name="distill", task_runner=ThreadPoolTaskRunner(max_workers=len(ROLES)))
def distill_flow(params_file: str = "params.yaml") -> list[dict]:
    """Distil target and shadow side by side on the shared distillation part."""
    params, layout = setup(params_file, concurrent_workers=len(ROLES))
    given = params.target.source == "checkpoint"  # a given target has no data/models/target.pt
    teachers = [layout.model_file(r) for r in ROLES if not (given and r == "target")]
    check_inputs([layout.dataset_file, layout.partition_file, *teachers])
    import_export_machinery(params.target)
    runs = [
        distill_role.submit(
            role,
            params.train,
            params.dp,
            params.distill,
            params.seed,
            params.device,
            layout,
            given=params.target if given else None,  # a given target is queried its own way
        )
        for role in ROLES
    ]
    return results_or_stop(runs)


if __name__ == "__main__":
    run(distill_flow, __doc__, workers=len(ROLES))
