"""Stage sequences: multi-metric sequences of every attack sample into data/sequences/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows._stage import run, setup
from seqmia.data.parts import ROLES
from tasks.sequences import check_sequences_inputs, write_population_logits, write_sequences
from tasks.target import import_export_machinery

WORKERS = 2


@flow(name="sequences", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def sequences_flow(params_file: str = "params.yaml") -> list[dict]:
    """Query each snapshot and the original model of both roles, turning each model's logits into
    metrics as they arrive; query each original model on RMIA's population samples too."""
    params, layout = setup(params_file, concurrent_workers=WORKERS)
    epochs, target, train = params.distill.epochs, params.target, params.train
    check_sequences_inputs(epochs, target, layout)
    import_export_machinery(target)
    on = (params.sequences, target, train, params.dp, params.device, layout)
    writes = [write_sequences.submit(role, epochs, *on) for role in ROLES]
    population = [write_population_logits.submit(role, *on) for role in ROLES]
    return [w.result() for w in writes] + [p.result() for p in population]


if __name__ == "__main__":
    run(sequences_flow, __doc__, workers=WORKERS)
