"""Early stop of a stage's concurrent tasks: at the first failure, or when the stage is told to
stop (SIGTERM, Ctrl-C), the tasks stop at their next batch and write nothing more, instead of
training to the end."""

from __future__ import annotations

from prefect.futures import PrefectFuture

from seqmia.base.stopping import clear_stop, request_stop

# The stop itself is the core's (seqmia.base.stopping): one flag per stage process, which the
# tasks' loops and the worker processes they fork all ask. (With the Dask runner, tasks in other
# processes do not see it and run to their end.)


def start_afresh() -> None:
    """Forget an earlier flow run's stop: call when a stage's flow starts."""
    clear_stop()


def results_or_stop(futures: list[PrefectFuture], poll_seconds: float = 0.5) -> list:
    """The results of ``futures`` in order; at the first failure, tell the others to stop (they
    raise ``Stopped`` at their next batch) and raise that first failure's error.

    Anything raised while waiting stops them too: Prefect turns the SIGTERM that ends a stage
    (``dvc repro`` interrupted, a cancelled run) into an exception in this thread, and Ctrl-C
    raises ``KeyboardInterrupt`` here; the flow then waits for its tasks, which must not train
    to their end and write their outputs after the signal.
    """
    try:
        return _gather(futures, list(futures), poll_seconds)
    except BaseException:
        request_stop()
        raise


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
                request_stop()
    if failed is not None:
        failed.result()  # raises the task's own error
    return [f.result() for f in futures]
