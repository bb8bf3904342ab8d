"""Early stop of a stage's concurrent tasks: at the first failure the others stop at their next
batch and write nothing more, instead of training to the end."""

from __future__ import annotations

import threading

from prefect.futures import PrefectFuture

from seqmia.errors import TrainingStopped

# Set when a task of the running stage has failed: its siblings stop at their next batch and write
# nothing more. One event per process is enough: a stage process runs one flow. (With the Dask
# runner, tasks in other processes do not see it and run to their end, as before.)
STOP = threading.Event()


def stop_requested() -> bool:
    """True once a sibling task of this stage has failed (pass as ``fit``'s ``should_stop``)."""
    return STOP.is_set()


def raise_if_stopped() -> None:
    """Call before writing outputs: a stopped stage never rewrites a sibling role's artefacts."""
    if STOP.is_set():
        raise TrainingStopped("a sibling task of this stage failed; nothing written")


def results_or_stop(futures: list[PrefectFuture], poll_seconds: float = 0.5) -> list:
    """The results of ``futures`` in order; at the first failure, tell the others to stop (they
    raise ``TrainingStopped`` at their next batch) and raise that first failure's error."""
    try:
        return _gather(futures, list(futures), poll_seconds)
    finally:
        STOP.clear()  # the next flow run in this process starts afresh


def _gather(futures: list[PrefectFuture], pending: list[PrefectFuture], poll: float) -> list:
    failed = None
    while pending:
        for future in list(pending):
            future.wait(timeout=poll / len(pending))
            state = future.state
            if not state.is_final():
                continue
            pending.remove(future)
            if failed is None and not state.is_completed():
                failed = future
                STOP.set()
    if failed is not None:
        failed.result()  # raises the task's own error
    return [f.result() for f in futures]
