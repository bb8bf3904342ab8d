"""Stage evaluate: membership inference on the target model, metrics and plots into eval/."""

from prefect import flow

from flows._stage import run, setup
from seqmia.params.whole import params_to_dict
from tasks.evaluate import evaluate_attacks


@flow(name="evaluate")
def evaluate_flow(params_file: str = "params.yaml") -> dict:
    """Score target members and non-members with SeqMIA and the baselines; report and plot."""
    params, layout = setup(params_file)
    references = params.reference.models
    # The report lists every parameter of the run, so this stage reads (and declares) them all.
    return evaluate_attacks(
        params.evaluate, references, params.seed, params_to_dict(params), layout
    )


if __name__ == "__main__":
    run(evaluate_flow, __doc__)
