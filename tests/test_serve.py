"""``python -m flows.experiment --serve`` against a real Prefect server: stopping it pauses its
deployment (Prefect's shutdown), serving it again resumes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from flows.experiment import SERVE_DEPLOYMENT
from tests.conftest import REPO

pytestmark = pytest.mark.slow
DEPLOYMENT = f"experiment/{SERVE_DEPLOYMENT}"


def _paused(env: dict[str, str]) -> bool | None:
    """Whether the served deployment is paused; None while it does not exist."""
    shown = subprocess.run(
        ["prefect", "deployment", "inspect", DEPLOYMENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if shown.returncode != 0:
        return None
    return "'paused': True" in shown.stdout


def _serve_until(env: dict[str, str], paused: bool) -> subprocess.Popen:
    """Start serving; return the process once the deployment's paused flag reads ``paused``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.experiment", "--serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while _paused(env) is not paused:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"serving never left {DEPLOYMENT} paused={paused}")
        time.sleep(2)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)  # the process this test started
    assert proc.wait(timeout=120) in (0, 130)  # Prefect ends serving cleanly at the signal


def test_a_stopped_serve_resumes_its_deployment_when_served_again(prefect_env) -> None:
    env = {**prefect_env, "PYTHONPATH": str(REPO)}
    first = _serve_until(env, paused=False)
    _stop(first)
    assert _paused(env) is True  # Prefect paused it at shutdown
    second = _serve_until(env, paused=False)  # fails here if it stays paused
    _stop(second)


def test_a_submitted_run_carries_its_experiment_name_while_queued(prefect_env) -> None:
    """``--submit`` names the flow run from submission: the queue shows the experiment's name
    before any worker picks it up (nobody serves the deployment here, so it stays queued)."""
    env = {**prefect_env, "PYTHONPATH": str(REPO)}
    _stop(_serve_until(env, paused=False))  # the deployment exists; nothing serves it now
    name = "queued-under-its-name"
    submitted = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.experiment",
            "--submit",
            DEPLOYMENT,
            "--name",
            name,
            "-S",
            "attack.epochs=3",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert f"queued flow run {name} (" in submitted.stdout
    run_id = submitted.stdout.split("(")[1].split(")")[0]
    shown = subprocess.run(
        ["prefect", "flow-run", "inspect", run_id], env=env, capture_output=True, text=True
    )
    assert f"'name': '{name}'" in shown.stdout
    assert "'attack.epochs': 3" in shown.stdout
    subprocess.run(
        ["prefect", "flow-run", "delete", run_id],
        env=env,
        capture_output=True,
        input="y\n",
        text=True,
    )
    bad = subprocess.run(
        [sys.executable, "-m", "flows.experiment", "--submit", DEPLOYMENT, "-S", "attack.epoch=3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "'attack.epoch'" in bad.stderr  # refused before submitting
