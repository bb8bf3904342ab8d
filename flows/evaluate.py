"""Stage evaluate: membership inference on the target model, metrics and plots into eval/."""

from prefect import flow

from flows._stage import run, setup
from tasks.evaluate import check_evaluate_inputs, evaluate_attacks


@flow(name="evaluate")
def evaluate_flow(params_file: str = "params.yaml") -> dict:
    """Score target members and non-members with SeqMIA and the baselines; report and plot."""
    params, layout = setup(params_file)
    check_evaluate_inputs(params, layout)
    return evaluate_attacks(params, layout)


if __name__ == "__main__":
    run(evaluate_flow, __doc__)
