"""Stage baselines: shadow-trained comparison attacks and SeqMIA ablations into data/baselines/."""

from prefect import flow

from flows._stage import run, setup
from tasks.baselines import shadow_metrics, train_baselines


@flow(name="baselines")
def baselines_flow(params_file: str = "params.yaml") -> dict:
    """Train each comparison attack on shadow data (side by side in one-thread worker
    processes) and score the target samples."""
    params, layout = setup(params_file)
    shadow_metrics(layout)  # every input loads before any baseline trains
    return train_baselines(params.baselines, params.seed, params.device, layout)


if __name__ == "__main__":
    run(baselines_flow, __doc__)
