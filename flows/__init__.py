"""Prefect flows, one per dvc.yaml stage (``python -m flows.<stage>``).

Importing this package sets Prefect defaults that a fresh machine needs before Prefect itself is
imported: a generous start-up timeout for the temporary server that Prefect starts when no
``PREFECT_API_URL`` is set (its 20 s default can fail on a cold machine), and no analytics.
Set ``PREFECT_API_URL`` to a running ``prefect server`` to watch the runs in the UI; without it,
the stages of a run share one local server (flows/_server.py).
"""

import ctypes
import os
import sys

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _cap_allocator_arenas() -> None:
    """Cap glibc's allocator at two arenas (its default is eight per core).

    Each thread that allocates otherwise gets an arena of its own, and the freed per-batch
    activations of concurrent tasks stay in those arenas: on the default data, the sequences
    stage (3 snapshots per role) peaked at 1911 MiB with default settings and 1785 MiB with two
    arenas. A fixed 1 MiB mmap threshold brought it to 1509 MiB but made training steps up to
    1.7x slower (every large tensor then costs fresh page faults), so it is not set. Allocation
    only: results are unchanged. Set here, before Prefect or torch start threads.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    m_arena_max = -8  # mallopt parameter from glibc's malloc.h
    libc.mallopt(m_arena_max, 2)


_cap_allocator_arenas()


# The dvc.yaml stages, each run as ``python -m flows.<stage>`` (tests/test_dvc_yaml.py checks).
STAGES = ("prepare", "partition", "train", "reference", "distill", "sequences", "attack",
          "baselines", "evaluate")  # fmt: skip
