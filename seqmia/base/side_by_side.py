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

from seqmia.base.stopping import become_worker, request_stop


def _start_worker(parent: int) -> None:
    become_worker(parent)  # its jobs stop when the stage does, or when the stage process dies
    # Ctrl-C reaches every process of the terminal's group: the parent stops the jobs through the
    # stage's stop (at their next batch), so a worker must not die of it between two jobs. A
    # worker forked while the parent had another SIGTERM handler gets the default one back.
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
    are cancelled, the stage's stop is requested (``seqmia.base.stopping``: running jobs that ask
    ``stop_requested()`` stop at their next batch), and that first error is raised; the same
    when this process is interrupted while it waits (SIGTERM through Prefect, Ctrl-C).
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
    results: list[Any] = [None] * len(jobs)
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
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
                    request_stop()
                    for other in futures:
                        other.cancel()
                else:
                    stopped.append(futures[future])
        except BaseException:  # interrupted: the pool's exit waits for the running jobs
            request_stop()
            for other in futures:
                other.cancel()
            raise
    if failure is not None:
        if stopped:
            failure.add_note(f"sibling jobs {stopped} stopped early (Stopped)")
        raise failure
    return results
