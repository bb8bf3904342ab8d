"""What a stage process pays besides its work: Prefect's flow-run heartbeats only when asked
for, and the timing lines the benchmark reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows._stage import PROCESS_PREFIX, process_seconds

ROOT = Path(__file__).resolve().parents[1]

HEARTBEAT_CODE = (
    "from prefect.settings import get_current_settings\n"
    "from flows._stage import heartbeats_only_if_asked\n"
    "with heartbeats_only_if_asked():\n"
    "    print(get_current_settings().flows.heartbeat_frequency)\n"
)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [(None, "None"), ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "45"),
     ("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", "45")],
)  # fmt: skip
def test_flow_heartbeats_are_sent_only_when_the_user_sets_their_frequency(variable, expected):
    env = {k: v for k, v in os.environ.items() if "HEARTBEAT" not in k}
    if variable:
        env[variable] = "45"
    out = subprocess.run([sys.executable, "-c", HEARTBEAT_CODE], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_seconds_counts_from_the_start_of_the_process():
    code = (
        "import time\nfrom flows._stage import process_seconds\n"
        "time.sleep(1.0)\nprint(process_seconds())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert 1.0 <= float(out.stdout) < 30.0
    assert process_seconds() is not None and PROCESS_PREFIX.endswith(":")
