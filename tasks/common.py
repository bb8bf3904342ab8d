"""What every task shares: the no-cache task options, the once-per-process dataset load, and
the preflight and early stop of stages that run several tasks side by side."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from seqmia.artifacts import RESTORE_HINT, load_state_dict
from seqmia.errors import DamagedFileError, UserError, first_line
from seqmia.training import TrainingStopped

# Keyword arguments of every task that writes artefacts (see tasks/__init__.py).
ARTEFACT_TASK = {"cache_policy": NO_CACHE, "persist_result": False}

_load_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _load_npz(path: str, mtime: float) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def load_prepared(path: Path) -> dict[str, np.ndarray]:
    """Arrays of the prepared dataset (``x``, ``y``, ``classes``, ``mean``, ``std``), read once per
    process and shared by concurrent tasks."""
    with _load_lock:
        return _load_npz(str(path), path.stat().st_mtime)


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


def check_inputs(paths: list[Path]) -> None:
    """Load every input a stage's tasks will read (``.npz``, ``.parquet``, ``.pt``), before any
    task starts; a missing or damaged one stops the stage with a ``DamagedFileError`` naming it."""
    for path in paths:
        if not path.exists():
            raise DamagedFileError(f"input {path} is missing; run the stage that writes it first")
        try:
            if path.suffix == ".npz":
                load_prepared(path)
            elif path.suffix == ".parquet":
                pd.read_parquet(path)
            elif path.suffix == ".pt":
                load_state_dict(path)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - each reader has its own errors for a bad file
            raise DamagedFileError(
                f"input {path} cannot be read ({type(err).__name__}: {first_line(err)}); "
                f"{RESTORE_HINT}"
            ) from None


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
