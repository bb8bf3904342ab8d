"""One stop for a stage's work, seen alike by its threads and by the worker processes it forks.

A stage stops early when one of its tasks fails (finishing the others would only waste time) or
when it is told to (SIGTERM, Ctrl-C). Long loops ask ``stop_requested()`` before every batch and
raise ``Stopped``; whatever decides to stop calls ``request_stop()``. The flag is a
multiprocessing event created when this module is first imported, so a worker forked later shares
it with the process that forked it: setting it anywhere stops every loop of the stage.
"""

from __future__ import annotations

import multiprocessing
import os
import threading


class Stopped(Exception):
    """A loop stopped early because a stop was requested; what it would have returned or written
    does not exist."""


def _new_flag() -> threading.Event:
    """A multiprocessing event where workers can be forked (shared with them), else a thread
    event (without fork, ``side_by_side`` runs its jobs in this process)."""
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork").Event()
    return threading.Event()


_flag = _new_flag()
# In a forked worker: the process that forked it. A worker whose parent has died stops too, so a
# killed stage leaves no orphans training for minutes.
_parent: list[int] = []


def request_stop() -> None:
    """Ask every loop of this stage, in every thread and forked worker, to stop."""
    _flag.set()


def clear_stop() -> None:
    """Forget a stop requested earlier (a new stage run in the same process starts afresh)."""
    _flag.clear()


def become_worker(parent: int) -> None:
    """Mark this process as a worker forked by process ``parent``."""
    _parent[:] = [parent]


def stop_requested() -> bool:
    """True once a stop was requested, or, in a worker, once the process that forked it is gone.
    Pass it as a training loop's ``should_stop``."""
    return _flag.is_set() or (bool(_parent) and os.getppid() != _parent[0])


def raise_if_stopped(what: str = "nothing written") -> None:
    """Raise ``Stopped`` if a stop was requested: call before writing outputs, so that a stopped
    stage never writes after the request."""
    if stop_requested():
        raise Stopped(f"the stage is stopping; {what}")
