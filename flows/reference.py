"""Stage reference: LiRA's reference models, trained on attacker data, into data/reference/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

import seqmia.params.reference  # noqa: F401 - the schema of params.reference, which it reads
from flows._stage import read_params, run, setup
from seqmia.base.runtime import available_cpus
from tasks.common import check_inputs
from tasks.reference import train_reference
from tasks.stopping import results_or_stop

WORKERS = 2


@flow(name="reference", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def reference_flow(params_file: str = "params.yaml") -> list[dict]:
    """Train ``reference.models`` models side by side, each on its own draw of shadow data."""
    count = read_params(params_file).reference.models
    params, layout = setup(params_file, concurrent_workers=min(count, WORKERS, available_cpus()))
    check_inputs([layout.dataset_file, layout.partition_file])
    runs = [
        train_reference.submit(
            i, params.train, params.dp, params.reference, params.seed, params.device, layout
        )
        for i in range(1, count + 1)
    ]
    return results_or_stop(runs)


if __name__ == "__main__":
    run(reference_flow, __doc__, workers=WORKERS)
