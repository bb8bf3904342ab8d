"""What every stage's ``python -m flows.<stage>`` does before and around its flow."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import torch
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import Pending
from prefect.task_runners import TaskRunner

from seqmia.config import Params, load_params
from seqmia.errors import UserError
from seqmia.layout import Layout
from seqmia.runtime import threads_per_worker

# Where a stage's tasks run: "threads" (default: a thread pool in the stage's process) or "dask"
# (a Dask cluster: the one at SEQMIA_DASK_ADDRESS, else a local cluster of worker processes).
RUNNER_ENV = "SEQMIA_TASK_RUNNER"
DASK_ADDRESS_ENV = "SEQMIA_DASK_ADDRESS"


def setup(params_file: str, concurrent_workers: int = 1) -> tuple[Params, Layout]:
    """Validate params.yaml and give each concurrent CPU worker its share of the cores."""
    params = load_params(params_file)
    torch.set_num_threads(threads_per_worker(concurrent_workers))
    return params, Layout(Path(params_file).resolve().parent)


def dask_runner(workers: int) -> TaskRunner:
    """A Dask task runner: the cluster at ``$SEQMIA_DASK_ADDRESS``, or a local cluster of
    ``workers`` one-thread processes that share the cores like the thread pool does."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as err:
        raise UserError(
            f"{RUNNER_ENV}=dask needs prefect-dask; install it with: pip install -e '.[dask]'"
        ) from err
    address = os.environ.get(DASK_ADDRESS_ENV)
    if address:
        return DaskTaskRunner(address=address)
    # Worker processes inherit the environment: give each its share of the cores.
    os.environ["OMP_NUM_THREADS"] = str(threads_per_worker(workers))
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
    )


def chosen_runner(workers: int) -> TaskRunner | None:
    """The task runner ``$SEQMIA_TASK_RUNNER`` asks for; None keeps the flow's own thread pool."""
    kind = os.environ.get(RUNNER_ENV, "threads")
    if kind == "threads":
        return None
    if kind == "dask":
        return dask_runner(workers)
    raise UserError(f"{RUNNER_ENV} must be 'threads' or 'dask', got {kind!r}")


# Set by the experiment flow: this stage's flow run becomes a child of that task run (the
# experiment's per-stage task), so the UI shows one experiment run with its stages inside.
PARENT_ENV = "SEQMIA_PARENT_TASK_RUN_ID"
RUN_NAME_ENV = "SEQMIA_STAGE_RUN_NAME"


def call_flow(flow: Flow, parameters: dict) -> None:
    """Run ``flow``, as a child of the task run named by ``$SEQMIA_PARENT_TASK_RUN_ID`` if set
    (Prefect links a flow run to its parent through ``parent_task_run_id``)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        flow(**parameters)
        return
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(
            flow, name=os.environ.get(RUN_NAME_ENV), parameters=parameters,
            parent_task_run_id=UUID(parent), state=Pending(),
        )  # fmt: skip
    run_flow(flow, flow_run=flow_run, parameters=parameters)


def run(flow: Callable[..., object], description: str, workers: int = 1) -> None:
    """Command line of a stage: validate params before any work, then run ``flow``.

    ``workers``: how many of the flow's tasks may run at once (sizes a Dask cluster).
    Errors the user can fix (a bad params key, a missing dataset) print one clear line and exit 2.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    args = parser.parse_args()
    try:
        load_params(args.params)  # fail fast, before Prefect starts anything
        runner = chosen_runner(workers)
        if runner is not None:
            flow = flow.with_options(task_runner=runner)
        call_flow(flow, {"params_file": args.params})
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
