"""Stage quantile: the quantile-regression attack's regressors, one per role, into
data/quantile/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

import seqmia.params.quantile  # noqa: F401 - the schema of params.quantile, which it reads
import seqmia.params.train  # noqa: F401 - the regressor's architecture options (train.mlp_*, ...)
from flows._stage import run, setup
from seqmia.base.runtime import available_cpus
from seqmia.data.parts import ROLES
from tasks.common import check_inputs
from tasks.quantile import fit_quantile
from tasks.stopping import results_or_stop

WORKERS = 2


@flow(name="quantile", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def quantile_flow(params_file: str = "params.yaml") -> list[dict]:
    """Fit the target's and the shadow's regressors side by side, each on its model's answers on
    the population, and score each role's attack samples."""
    params, layout = setup(
        params_file, concurrent_workers=min(len(ROLES), WORKERS, available_cpus())
    )
    check_inputs(
        [
            layout.dataset_file,
            layout.partition_file,
            *(
                f(r)
                for r in ROLES
                for f in (layout.final_logits_file, layout.population_logits_file)
            ),
        ]
    )
    runs = [
        fit_quantile.submit(role, params.quantile, params.train, params.seed, params.device, layout)
        for role in ROLES
    ]
    return results_or_stop(runs)


if __name__ == "__main__":
    run(quantile_flow, __doc__, workers=WORKERS)
