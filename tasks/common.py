"""What every task shares: the no-cache task options and the once-per-process dataset load."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
from prefect.cache_policies import NO_CACHE

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
