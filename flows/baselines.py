"""Stage baselines: shadow-trained comparison attacks and SeqMIA ablations into data/baselines/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows._stage import run, setup
from tasks.baselines import expand_specs, shadow_metrics, train_baseline, write_baseline_scores
from tasks.stopping import results_or_stop

WORKERS = 2


@flow(name="baselines", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def baselines_flow(params_file: str = "params.yaml") -> dict:
    """Train each comparison attack on shadow data, side by side, and score the target samples."""
    params, layout = setup(params_file, concurrent_workers=WORKERS)
    metrics = shadow_metrics(layout)
    runs = [train_baseline.submit(spec, params, layout) for spec in expand_specs(params, metrics)]
    return write_baseline_scores(results_or_stop(runs), layout)


if __name__ == "__main__":
    run(baselines_flow, __doc__, workers=WORKERS)
