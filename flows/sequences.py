"""Stage sequences: multi-metric sequences of every attack sample into data/sequences/."""

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows._stage import run, setup
from seqmia.params.partition import ROLES
from tasks.sequences import (
    check_sequences_inputs,
    model_series,
    query_model,
    write_population_logits,
    write_sequences,
)
from tasks.target import import_export_machinery

WORKERS = 2


@flow(name="sequences", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def sequences_flow(params_file: str = "params.yaml") -> list[dict]:
    """Query each snapshot and the original model of both roles, then turn logits into metrics;
    query each original model on RMIA's population samples too."""
    params, layout = setup(params_file, concurrent_workers=WORKERS)
    check_sequences_inputs(params, layout)
    import_export_machinery(params)
    queries = {
        role: [
            query_model.submit(role, i, path, params, layout)
            for i, path in enumerate(model_series(params, layout, role), start=1)
        ]
        for role in ROLES
    }
    writes = [
        write_sequences.submit(role, [q.result() for q in queries[role]], params, layout)
        for role in ROLES
    ]
    population = [write_population_logits.submit(role, params, layout) for role in ROLES]
    return [w.result() for w in writes] + [p.result() for p in population]


if __name__ == "__main__":
    run(sequences_flow, __doc__, workers=WORKERS)
