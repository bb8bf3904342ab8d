"""Prefect flows, one per dvc.yaml stage (``python -m flows.<stage>``).

Importing this package sets Prefect defaults that a fresh machine needs before Prefect itself is
imported: a generous start-up timeout for the temporary server that Prefect starts when no
``PREFECT_API_URL`` is set (its 20 s default can fail on a cold machine), and no analytics.
Set ``PREFECT_API_URL`` to a running ``prefect server`` to skip that start-up (about 10 s per
stage) and to watch the runs in the UI.
"""

import ctypes
import os
import sys

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _allocator_returns_memory() -> None:
    """Make glibc's allocator give freed memory back rather than keep it per thread.

    By default glibc gives every thread its own arena and raises its mmap threshold after each
    large free, so the per-batch activations of concurrent tasks end up in arenas that never
    shrink: the sequences stage peaked at 2.15 GB with default settings and 1.43 GB with two
    arenas and a fixed 1 MiB mmap threshold (measured; README: Benchmark). Allocation only:
    results are unchanged. Set here, before Prefect or torch start threads.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    m_mmap_threshold, m_arena_max = -3, -8  # mallopt parameters from glibc's malloc.h
    libc.mallopt(m_arena_max, 2)
    libc.mallopt(m_mmap_threshold, 1 << 20)


_allocator_returns_memory()
