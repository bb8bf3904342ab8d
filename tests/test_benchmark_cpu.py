"""The pipeline benchmark's split of the machine's CPU time among the stage, the shared server,
DVC and everything else."""

import os
import sys
import time

import pytest

from benchmarks.pipeline import CpuSnapshot, cpu_between, cpu_snapshot


def test_cpu_between_counts_increases_new_processes_and_the_rest_as_the_stage():
    before = CpuSnapshot(
        busy=10.0,
        steal=1.0,
        processes={
            1: (5.0, "dvc"),
            2: (1.0, "server"),
            3: (2.0, "other"),
            4: (3.0, "other"),
        },
    )
    # pid 4 ended within the interval (a stage process): its seconds fall in the remainder;
    # pid 5 began within it (the keeper's server): all of its seconds count.
    after = CpuSnapshot(
        busy=30.0,
        steal=1.5,
        processes={
            1: (6.0, "dvc"),
            2: (2.5, "server"),
            3: (2.25, "other"),
            5: (0.5, "server"),
        },
    )
    share = cpu_between(before, after)
    assert (share.busy, share.steal) == (20.0, 0.5)
    assert (share.dvc, share.server, share.other) == (1.0, 2.0, 0.25)
    assert share.stage == 16.75


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmark reads /proc")
def test_cpu_snapshot_sees_this_process_spin():
    before = cpu_snapshot(dvc_pid=os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = cpu_snapshot(dvc_pid=os.getpid())
    share = cpu_between(before, after)
    assert after.processes[os.getpid()][1] == "dvc"
    assert 0.2 <= share.dvc <= share.busy + 0.05, share
