"""Independent CPU jobs side by side, each in a one-thread worker process.

Small attack models spend their time in many tiny kernels and in Python between them; threads of
one process contend for the interpreter lock there, while separate processes do not. Each job
runs with one intra-op thread, in or out of a worker, so its float reductions (and results) are
those of training it alone with one thread, whatever the number of workers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

# Set in each worker process: the event "a sibling job has failed", and the parent's pid.
_stop: Any = None
_parent: int | None = None


def stop_requested() -> bool:
    """True in a worker once a sibling job has failed or the stage process has died: pass as a
    long job's ``should_stop`` (a killed stage must not leave orphans training for minutes)."""
    if _stop is None:
        return False
    return _stop.is_set() or os.getppid() != _parent


def _start_worker(stop: Any, parent: int) -> None:
    global _stop, _parent
    _stop, _parent = stop, parent
    # Ctrl-C reaches every process of the terminal's group: the parent stops the jobs through
    # ``stop`` (at their next batch), so a worker must not die of it between two jobs. A worker
    # forked while the parent had another SIGTERM handler gets the default one back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import torch

    torch.set_num_threads(1)


def _one_thread(fn: Callable[[Any], Any], job: Any) -> Any:
    """``fn(job)`` in this process with one intra-op thread (the previous count restored)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(job)
    finally:
        torch.set_num_threads(before)


def run_side_by_side(
    fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, order: Sequence[int] | None = None
) -> list[Any]:
    """``[fn(job) for job in jobs]``, run by up to ``workers`` one-thread worker processes.

    ``fn`` must be a module-level function (workers are forked, so nothing is re-imported).
    ``order``: the indices of ``jobs`` in the order to start them (longest first balances the
    workers); the results keep the order of ``jobs``. At the first failure, the jobs not started
    are cancelled, running ones see ``stop_requested()`` turn True, and that first error is raised;
    the same when this process is interrupted while it waits (SIGTERM through Prefect, Ctrl-C).
    With one worker, on a platform without fork, or inside a daemonic process (a Dask worker,
    which may not have children), the jobs run one after another in this process.
    """
    order = list(range(len(jobs))) if order is None else list(order)
    workers = min(workers, len(jobs))
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if workers <= 1 or not forkable or multiprocessing.current_process().daemon:
        return [_one_thread(fn, job) for job in jobs]
    # fork: the workers share this process's imported modules; they run only torch and numpy
    # code on CPU (never CUDA, which cannot be used across a fork).
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    results: list[Any] = [None] * len(jobs)
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(stop, os.getpid())
    ) as pool:
        futures = {pool.submit(fn, jobs[i]): i for i in order}
        failure: BaseException | None = None
        stopped: list[int] = []
        try:
            for future in concurrent.futures.as_completed(futures):
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None:
                    results[futures[future]] = future.result()
                elif failure is None:
                    failure = error
                    stop.set()
                    for other in futures:
                        other.cancel()
                else:
                    stopped.append(futures[future])
        except BaseException:  # interrupted: the pool's exit waits for the running jobs
            stop.set()
            for other in futures:
                other.cancel()
            raise
    if failure is not None:
        if stopped:
            failure.add_note(f"sibling jobs {stopped} stopped early (AttackStopped)")
        raise failure
    return results
