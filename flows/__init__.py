"""Prefect flows, one per dvc.yaml stage (``python -m flows.<stage>``).

Importing this package sets Prefect defaults that a fresh machine needs before Prefect itself is
imported: a generous start-up timeout for the temporary server that Prefect starts when no
``PREFECT_API_URL`` is set (its 20 s default can fail on a cold machine), and no analytics.
Set ``PREFECT_API_URL`` to a running ``prefect server`` to skip that start-up (about 10 s per
stage) and to watch the runs in the UI.

Without it, the stages of a run share one local server (flows/_server.py). A stage run as
``python -m flows.<stage>`` begins starting that server here, before it imports anything heavy,
so that the server boots on the other core while the stage imports Prefect and torch.
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


def _running_stage() -> str | None:
    """The stage this interpreter was started to run (``python -m flows.<stage>``), or None."""
    argv = getattr(sys, "orig_argv", [])
    for flag, module in zip(argv, argv[1:], strict=False):
        if flag == "-m":
            stage = module.removeprefix("flows.")
            wants_help = any(a in ("-h", "--help") for a in argv)
            return stage if stage in STAGES and not wants_help else None
    return None


def _begin_shared_server() -> None:
    """Start the run's shared Prefect server now, without waiting, when this process runs a
    stage that will use it: no ``PREFECT_API_URL`` in the environment and the shared server
    not turned off (``flows/_stage.use_shared_server`` decides for good once Prefect's settings,
    profiles included, are read, and stops what was begun here if they name another API)."""
    from flows import _server  # standard library only

    if _running_stage() is None or os.environ.get("PREFECT_API_URL"):
        return
    if _server.server_mode() != "shared":
        return
    try:
        _server.begin_shared_server(_server.startup_timeout())
    except (OSError, ValueError):
        pass  # an unwritable PREFECT_HOME, a bad timeout: the stage reports it when it starts one


_begin_shared_server()
