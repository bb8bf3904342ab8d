"""What every stage's ``python -m flows.<stage>`` does before and around its flow."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import yaml

import seqmia.params.run  # noqa: F401 - every stage may read seed and device
from flows._server import shared_server_url, startup_timeout
from seqmia.base.artifacts import remove_stale_temporaries
from seqmia.base.errors import UserError
from seqmia.base.runtime import resolve_device, threads_per_worker
from seqmia.params.schema import StageParams, read_document, validate_document
from tasks.layout import Layout
from tasks.stopping import start_afresh

if TYPE_CHECKING:  # imported only when a stage asks for Dask or uses torch: not paid otherwise
    from prefect import Flow
    from prefect.task_runners import TaskRunner

# Where a stage's tasks run: "threads" (default: a thread pool in the stage's process) or "dask"
# (a Dask cluster: the one Dask's own ``scheduler-address`` setting names, e.g. through
# DASK_SCHEDULER_ADDRESS, else a local cluster of worker processes).
RUNNER_ENV = "SEQMIA_TASK_RUNNER"
# The line a stage prints at its end with the seconds from its flow body's start (``setup``) to
# the flow's return: benchmarks/pipeline.py takes the rest of the stage's wall time as its fixed
# cost (interpreter start, imports, Prefect server and flow run set-up, DVC's own checks).
TIMING_PREFIX = "stage work seconds:"
_work_started: list[float] = []
# Two more lines for the benchmark's account of the fixed cost: the stage process's own wall time
# (the rest of the stage's wall time is DVC's), and the seconds it waited for the run's shared
# Prefect server to start, which only the run's first stage pays.
PROCESS_PREFIX = "stage process seconds:"
SERVER_START_PREFIX = "shared server start seconds:"
# And its peak memory: the largest resident set of this process and of the worker processes it
# waited for (side-by-side fits), in MiB.
PEAK_PREFIX = "stage peak MiB:"
_server_start_seconds: list[float] = []


# The stage whose flow runs in this process (set by ``run``): names its params reads.
_stage_name: list[str] = []


# Each params file parsed once per process (by its resolved path): a stage checks it whole,
# then reads its sections, from the one parse.
_documents: dict[Path, Any] = {}


def params_document(params_file: str) -> Any:
    """The parsed params file (``read_document``), read once by this process."""
    path = Path(params_file).resolve()
    if path not in _documents:
        _documents[path] = read_document(path)
    return _documents[path]


def read_params(params_file: str) -> StageParams:
    """The params this stage reads (not validated as a whole: ``setup`` and ``run`` do that)."""
    return StageParams(params_document(params_file), (_stage_name or [""])[-1])


def setup(params_file: str, concurrent_workers: int = 1) -> tuple[StageParams, Layout]:
    """Validate params.yaml and give each concurrent CPU worker its share of the cores.

    The whole file is validated (a typo in any section stops the stage), but the stage gets
    ``StageParams``: sections built by the schema modules its own code imports.
    """
    _work_started.append(time.perf_counter())
    start_afresh()
    validate_document(params_document(params_file))
    params = read_params(params_file)
    # Stages that use torch import it with their tasks; the others (partition) never pay for it.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads_per_worker(concurrent_workers))
    return params, Layout(Path(params_file).resolve().parent)


def dask_runner(workers: int) -> TaskRunner:
    """A Dask task runner: the cluster that Dask's ``scheduler-address`` setting names
    (``DASK_SCHEDULER_ADDRESS`` or a Dask config file), or a local cluster of ``workers``
    one-thread processes that share the cores like the thread pool does."""
    try:
        import dask.config
        from prefect_dask import DaskTaskRunner
    except ImportError as err:
        raise UserError(
            f"{RUNNER_ENV}=dask needs prefect-dask; install it with: pip install -e '.[dask]'"
        ) from err
    address = dask.config.get("scheduler-address", None)
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


class _NoUserErrorTraceback(logging.Filter):
    """Keep Prefect's one-line log of a failed task or flow, but drop the traceback when the
    failure is a ``UserError``: the stage prints that error in one line and exits 2."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.exc_info, record.exc_text = None, None
        return True


def _not_exit_drain_progress(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Still processing items")


def quiet_user_error_tracebacks() -> None:
    """Install ``_NoUserErrorTraceback`` on the loggers of Prefect's task and flow runs, and drop
    the events worker's "Still processing items" line: at the end of a stage Prefect sends its
    last few queued events, which it reports as a warning, although nothing is wrong."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(_NoUserErrorTraceback())
    logging.getLogger("EventsWorker").addFilter(_not_exit_drain_progress)


def check_api_answers() -> None:
    """Refuse, in one line, a configured Prefect API that does not answer its health check
    within Prefect's own request timeout (``PREFECT_API_REQUEST_TIMEOUT``, 60 s by default): a
    server that accepts connections but never replies would otherwise stall the stage for
    several timeouts of client retries without output."""
    import urllib.error
    import urllib.request

    from prefect.settings import PREFECT_API_REQUEST_TIMEOUT, PREFECT_API_URL

    url = (PREFECT_API_URL.value() or "").rstrip("/")
    if not url:
        return  # none configured: the stage uses the run's shared server (use_shared_server)
    timeout = float(PREFECT_API_REQUEST_TIMEOUT.value())
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout):
            return
    except urllib.error.HTTPError as err:
        problem = f"answered HTTP {err.code}"
    except (TimeoutError, urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        problem = f"did not answer within {timeout:g} s" if timed_out else f"failed: {reason}"
    raise UserError(
        f"the Prefect API at {url} (PREFECT_API_URL) {problem}; start or restart that server, "
        "or unset PREFECT_API_URL to run with the run's shared local one"
    )


def use_shared_server() -> None:
    """Without ``PREFECT_API_URL``, point this process at the run's shared local server (see
    flows/_server.py) instead of letting Prefect start a temporary one in every stage."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return

    os.environ["PREFECT_API_URL"], started = shared_server_url(startup_timeout())
    if started:
        _server_start_seconds.append(started)
    prefect.context.refresh_global_settings_context()  # Prefect read the environment at import


def stage_outputs(root: Path, stage: str) -> list[Path]:
    """The outs, metrics and plots that dvc.yaml declares for ``stage`` (none if not listed)."""
    dvc_file = root / "dvc.yaml"
    if not dvc_file.is_file():
        return []
    spec = (yaml.safe_load(dvc_file.read_text()) or {}).get("stages", {}).get(stage, {})
    entries = [e for key in ("outs", "metrics", "plots") for e in spec.get(key, [])]
    return [root / (next(iter(e)) if isinstance(e, dict) else e) for e in entries]


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
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(
            flow,
            name=os.environ.get(RUN_NAME_ENV),
            parameters=parameters,
            parent_task_run_id=UUID(parent),
            state=Pending(),
        )
    run_flow(flow, flow_run=flow_run, parameters=parameters)


@contextlib.contextmanager
def heartbeats_only_if_asked() -> Iterator[None]:
    """Run the stage's flow without Prefect's flow-run heartbeats unless the user configured
    them (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, in the environment or a Prefect profile).

    By default Prefect sends one every 180 s from a thread that it joins when the flow ends,
    and that thread sleeps in one-second steps: each stage paid up to 1 s for it. Heartbeats
    only matter with an automation that marks silent runs as crashed, which a user sets up
    together with the frequency.
    """
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if "heartbeat_frequency" in get_current_settings().flows.model_fields_set:
        yield
        return
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def proc_stat(pid: int | str) -> list[str]:
    """Fields 3 on of ``/proc/<pid>/stat`` (state, ppid, pgrp, …; see proc(5)), so that
    ``[0]`` is field 3. The command name before them may hold spaces or brackets, so the split
    is after its last ``)``. Raises OSError where there is no such process or no /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_seconds() -> float | None:
    """Wall seconds since this process started (Linux: from /proc), or None elsewhere."""
    try:
        starttime = int(proc_stat("self")[19])  # field 22: clock ticks from boot to the start
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return uptime - starttime / os.sysconf("SC_CLK_TCK")


def peak_mib() -> float:
    """The largest resident set of this process or of any child it waited for, in MiB."""
    import resource

    largest = max(
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return largest / 1024  # ru_maxrss is in KiB on Linux


def print_timings() -> None:
    """The lines benchmarks/pipeline.py reads: work, process and shared-server start seconds,
    and peak memory."""
    if _work_started:
        print(f"{TIMING_PREFIX} {time.perf_counter() - _work_started[0]:.3f}", file=sys.stderr)
    elapsed = process_seconds()
    if elapsed is not None:
        print(f"{PROCESS_PREFIX} {elapsed:.3f}", file=sys.stderr)
    if _server_start_seconds:
        print(f"{SERVER_START_PREFIX} {_server_start_seconds[0]:.3f}", file=sys.stderr)
    print(f"{PEAK_PREFIX} {peak_mib():.0f}", file=sys.stderr)


def run(flow: Callable[..., object], description: str, workers: int = 1) -> None:
    """Command line of a stage: validate params before any work, then run ``flow``.

    ``workers``: how many of the flow's tasks may run at once (sizes a Dask cluster).
    Errors the user can fix (a bad params key, a missing dataset) print one clear line and exit 2.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    args = parser.parse_args()
    try:
        _stage_name.append(flow.name)
        # Fail fast, before Prefect starts anything; a check, not an input of the stage's work.
        params = validate_document(params_document(args.params))
        if params.device not in ("auto", "cpu"):  # "auto" and "cpu" always resolve; no torch here
            resolve_device(params.device)  # a device this machine lacks, before any work
        check_api_answers()
        use_shared_server()
        quiet_user_error_tracebacks()
        remove_stale_temporaries(stage_outputs(Path(args.params).resolve().parent, flow.name))
        runner = chosen_runner(workers)
        if runner is not None:
            flow = flow.with_options(task_runner=runner)
        with heartbeats_only_if_asked():
            call_flow(flow, {"params_file": args.params})
        print_timings()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: the tasks stopped at their next batch (tasks.stopping)
        print("stopped by Ctrl-C (SIGINT); nothing was written after it", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    # The stage's outputs are written; what is left is the interpreter's exit, where Prefect
    # sends its last logs and events. Freezing the objects that torch, pandas and Prefect
    # allocated keeps the exit's garbage collections from walking every one of them again.
    gc.freeze()
