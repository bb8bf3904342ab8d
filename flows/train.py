"""Stage train: the target and shadow models, trained concurrently, into data/models/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows._stage import run, setup
from seqmia.data.parts import ROLES
from tasks.common import check_inputs
from tasks.stopping import results_or_stop
from tasks.target import import_export_machinery, record_target
from tasks.train import train_role


@flow(name="train", task_runner=ThreadPoolTaskRunner(max_workers=len(ROLES)))
def train_flow(params_file: str = "params.yaml") -> list[dict]:
    """Train target and shadow side by side, each on its own members with the same recipe."""
    params, layout = setup(params_file, concurrent_workers=len(ROLES))
    check_inputs([layout.dataset_file, layout.partition_file])
    import_export_machinery(params.target)
    given = params.target.source == "checkpoint"  # the target is given: validate and record it
    runs = []
    if given:
        runs.append(record_target.submit(params.target, params.train, params.device, layout))
    runs += [
        train_role.submit(role, params.train, params.dp, params.seed, params.device, layout)
        for role in ROLES
        if not (given and role == "target")
    ]
    return results_or_stop(runs)


if __name__ == "__main__":
    run(train_flow, __doc__, workers=len(ROLES))
