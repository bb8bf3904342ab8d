"""What every task shares: the no-cache task options, the once-per-process dataset load and the
check that a stage's inputs load before any task starts."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from prefect.cache_policies import NO_CACHE

from seqmia.base.artifacts import RESTORE_HINT, load_npz, load_state_dict, read_json
from seqmia.base.errors import DamagedFileError, UserError, first_line
from seqmia.data.partition import check_partition_matches

# Keyword arguments of every task that writes artefacts (see tasks/__init__.py).
ARTEFACT_TASK = {"cache_policy": NO_CACHE, "persist_result": False}

_load_lock = threading.Lock()

# Wall-clock timings stay out of DVC outputs (identical inputs must give identical bytes on any
# host): they go to the Prefect log and are appended to this git-ignored file, which no stage
# reads or writes as an output. SEQMIA_TIMINGS_FILE moves it (the experiment flow points it at
# its repository, not at the per-run workspace).
TIMINGS_ENV = "SEQMIA_TIMINGS_FILE"
TIMINGS_FILE = Path("logs/timings.jsonl")


def record_timing(what: str, seconds: float) -> None:
    """Append ``{"what", "seconds", "at", "experiment"}`` as one JSON line to the timings file."""
    path = Path(os.environ.get(TIMINGS_ENV) or TIMINGS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "what": what,
        "seconds": round(seconds, 3),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "experiment": os.environ.get("SEQMIA_EXPERIMENT", ""),
    }
    with path.open("a") as fh:  # one short write per line: concurrent appends stay whole lines
        fh.write(json.dumps(line) + "\n")


@functools.lru_cache(maxsize=2)
def _load_npz(path: str, mtime: float) -> dict[str, np.ndarray]:
    return load_npz(path)  # memory-mapped: concurrent tasks and stages read only their rows


def load_prepared(path: Path) -> dict[str, np.ndarray]:
    """Arrays of the prepared dataset (``x``, ``y``, ``classes``, ``mean``, ``std``), read once per
    process and shared by concurrent tasks."""
    with _load_lock:
        return _load_npz(str(path), path.stat().st_mtime)


def check_inputs(paths: list[Path], keep: bool = False) -> dict[Path, object]:
    """Load every input a stage's tasks will read (``.npz``, ``.parquet``, ``.pt``, ``.json``),
    before any task starts; a missing or damaged one stops the stage with a ``DamagedFileError``
    naming it. A partition among them is checked against the prepared dataset among them.

    ``keep``: return every loaded input by path (other suffixes are only checked to exist), for
    a stage that uses them in this process and need not read them twice. Otherwise weights and
    JSON are dropped as soon as each has loaded (the sequences stage checks 42 snapshots) and
    only the arrays and frames are returned."""
    loaded: dict[Path, object] = {}
    for path in paths:
        if not path.exists():
            raise DamagedFileError(f"input {path} is missing; run the stage that writes it first")
        try:
            if path.suffix == ".npz":
                loaded[path] = load_prepared(path)
            elif path.suffix == ".parquet":
                loaded[path] = pd.read_parquet(path)
            elif path.suffix == ".pt":
                weights = load_state_dict(path)
                if keep:
                    loaded[path] = weights
            elif path.suffix == ".json":
                document = read_json(path)
                if keep:
                    loaded[path] = document
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - each reader has its own errors for a bad file
            raise DamagedFileError(
                f"input {path} cannot be read ({type(err).__name__}: {first_line(err)}); "
                f"{RESTORE_HINT}"
            ) from None
    datasets = [(p, v) for p, v in loaded.items() if p.suffix == ".npz"]
    partitions = [
        (p, v)
        for p, v in loaded.items()
        if isinstance(v, pd.DataFrame) and {"sample_id", "label", "role"} <= set(v.columns)
    ]
    for (data_path, dataset), (part_path, partition) in zip(datasets, partitions, strict=False):
        check_partition_matches(partition, dataset["y"], part_path, data_path)
    return loaded
