"""What a stage process pays besides its work: Prefect's flow-run heartbeats only when asked
for, the timing lines the benchmark reads, and an ordinary interpreter exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.pipeline import logged_seconds
from flows._stage import PEAK_PREFIX, PROCESS_PREFIX, SERVER_START_PREFIX, TIMING_PREFIX

ROOT = Path(__file__).resolve().parents[1]

HEARTBEAT_CODE = (
    "from prefect.settings import get_current_settings\n"
    "from flows._stage import heartbeats_only_if_asked\n"
    "with heartbeats_only_if_asked():\n"
    "    print(get_current_settings().flows.heartbeat_frequency)\n"
)

# A stage whose flow body validates its params, sleeps and registers an exit handler; its script
# prints a line after ``run`` returns, which a stage that ended its process inside ``run`` (e.g.
# by ``os._exit``) never reaches.
PROBE_STAGE = """
import atexit, sys, time
from prefect import flow
from flows._stage import run, setup

@flow(name="overhead_probe")
def probe(params_file: str = "params.yaml") -> None:
    setup(params_file)
    time.sleep(WORK_SECONDS)
    atexit.register(print, "exit handlers ran", file=sys.stderr)

if __name__ == "__main__":
    run(probe, "a stage whose work is a sleep")
    print("run returned", file=sys.stderr)
"""
WORK_SECONDS = 0.5


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (None, "None"),
        ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "45"),
        ("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", "45"),
    ],
)
def test_flow_heartbeats_are_sent_only_when_the_user_sets_their_frequency(variable, expected):
    env = {k: v for k, v in os.environ.items() if "HEARTBEAT" not in k}
    if variable:
        env[variable] = "45"
    out = subprocess.run(
        [sys.executable, "-c", HEARTBEAT_CODE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_seconds_counts_from_the_start_of_the_process():
    code = (
        "import time\nfrom flows._stage import process_seconds\n"
        "time.sleep(1.0)\nprint(process_seconds())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert 1.0 <= float(out.stdout) < 30.0


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process line reads /proc")
def test_a_completed_stage_reports_what_the_benchmark_reads_and_exits_as_python_does(
    tmp_path: Path, prefect_env: dict[str, str]
) -> None:
    """The lines benchmarks/pipeline.py parses come out with values it can use (the flow body's
    seconds, the process's, its peak memory; no server start against a configured server), and
    then ``run`` returns and the process ends through the interpreter's exit: exit status 0, the
    exit handlers run after it."""
    script = tmp_path / "probe_stage.py"
    script.write_text(PROBE_STAGE.replace("WORK_SECONDS", repr(WORK_SECONDS)))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {**prefect_env, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    work = logged_seconds(out.stderr, TIMING_PREFIX)
    process = logged_seconds(out.stderr, PROCESS_PREFIX)
    peak = logged_seconds(out.stderr, PEAK_PREFIX)
    assert work is not None and WORK_SECONDS <= work < 60, out.stderr[-3000:]
    assert process is not None and work < process < 300
    assert peak is not None and 10 < peak < 100_000  # MiB: an interpreter with Prefect imported
    assert logged_seconds(out.stderr, SERVER_START_PREFIX) is None
    returned = out.stderr.rindex("run returned")
    assert out.stderr.rindex(PEAK_PREFIX) < returned < out.stderr.rindex("exit handlers ran")
