"""Train: the target or shadow model on its member part (one code path, a role argument)."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from seqmia.artifacts import save_state_dict, write_json
from seqmia.config import Params
from seqmia.data.samples import part_tensors
from seqmia.layout import Layout
from seqmia.runtime import resolve_device
from seqmia.seeding import make_generator
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.models import train_classifier
from tasks.stopping import raise_if_stopped


@task(**ARTEFACT_TASK, task_run_name="train-{role}")
def train_role(role: str, params: Params, layout: Layout) -> dict:
    """Train the ``role`` model on ``<role>_in``; save weights and a report with accuracies."""
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    _, x_in, y_in = part_tensors(dataset, partition, f"{role}_in")
    _, x_out, y_out = part_tensors(dataset, partition, f"{role}_out")
    model, report = train_classifier(
        params, dataset, (x_in, y_in), (x_out, y_out),
        make_generator(params.seed, "train", role), resolve_device(params.device),
        get_run_logger(), label=role,
    )  # fmt: skip
    raise_if_stopped()
    save_state_dict(layout.model_file(role), model)
    write_json(layout.model_report(role), {"role": role, **report})
    return {"role": role, **{k: report[k] for k in ("train_accuracy", "test_accuracy")}}
