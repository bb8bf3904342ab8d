"""Scheduling for real: a Prefect server on 127.0.0.1, a process work pool and a worker, the
repository's prefect.yaml deployed, an experiment run through the worker, and a second clone that
reproduces it from the shared DVC remote without rerunning any stage; an experiment killed on one
host continues on another from its last finished stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, stop_process_group
from tests.test_pipeline import STAGES, make_repo, stages_run, tiny_params

pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def test_deployment_runs_an_experiment_and_a_second_clone_reuses_it(
    tmp_path: Path, prefect_env: dict[str, str], digits_root: Path
) -> None:
    remote = tmp_path / "dvc-remote"
    repo = make_repo(tmp_path / "host-a", tiny_params())
    shutil.copy(REPO / "prefect.yaml", repo / "prefect.yaml")
    env = {**prefect_env, "SEQMIA_DATA_ROOT": str(digits_root), "SEQMIA_REPO": str(repo),
           "PYTHONPATH": ""}  # fmt: skip
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "deployments and remote"], repo, env)

    prefect = [sys.executable, "-m", "prefect"]
    sh([*prefect, "work-pool", "create", "seqmia", "--type", "process", "--overwrite"], repo, env)
    sh([*prefect, "--no-prompt", "deploy", "--all"], repo, env)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [*prefect, "worker", "start", "--pool", "seqmia", "--type", "process"],
        cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        params = {"overrides": {"attack.epochs": 2}, "name": "scheduled"}
        out = sh(
            [*prefect, "deployment", "run", "experiment/experiment",
             "--params", json.dumps(params), "--watch"],
            repo, env, timeout=900,
        )  # fmt: skip
        assert "Completed" in out, out[-2000:]
    finally:
        stop_process_group(worker)
        log.close()

    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env))
    assert "scheduled" in json.dumps(shown)
    assert '"seqmia"' in json.dumps(shown)  # its metrics are in the experiment table

    # Host B: a fresh clone with the same remote runs the same experiment; every stage comes
    # back from DVC's run-cache.
    clone = tmp_path / "host-b"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    started = time.monotonic()
    out = sh(
        [sys.executable, "-m", "flows.experiment", "-S", "attack.epochs=2", "--name", "again"],
        clone, {**env, "SEQMIA_REPO": str(clone)}, timeout=900,
    )  # fmt: skip
    assert stages_run(out) == [], out[-3000:]
    assert sum(f"Stage '{s}' is cached" in out for s in STAGES) == len(STAGES), out[-3000:]
    metrics_a = json.loads((repo / "eval" / "metrics.json").read_text())
    metrics_b = json.loads((clone / "eval" / "metrics.json").read_text())
    assert metrics_a == metrics_b
    assert time.monotonic() - started < 300


def test_an_experiment_cut_short_on_one_host_continues_on_another(
    tmp_path: Path, prefect_env: dict[str, str], digits_root: Path
) -> None:
    remote = tmp_path / "dvc-remote"
    repo = make_repo(tmp_path / "host-a", tiny_params())
    env = {**prefect_env, "SEQMIA_DATA_ROOT": str(digits_root), "PYTHONPATH": "",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], repo, env)
    sh(["git", "commit", "-qam", "remote"], repo, env)
    experiment = [sys.executable, "-m", "flows.experiment", "-S", "attack.epochs=2"]

    # Host A: stop it for good as soon as the reference stage has finished (and been pushed).
    finished = STAGES[: STAGES.index("reference") + 1]
    log_path = tmp_path / "host-a.log"
    log = open(log_path, "w")  # noqa: SIM115
    host_a = subprocess.Popen(
        [*experiment, "--name", "cut"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    done = "Task run 'stage-reference' - Finished in state Completed"
    try:
        deadline = time.monotonic() + 600
        while done not in log_path.read_text():
            assert host_a.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        os.killpg(host_a.pid, 9)  # no clean shutdown: the host is gone
        host_a.wait()
        log.close()
    assert not (repo / "eval" / "metrics.json").exists()

    # Host B: a fresh clone with the same remote picks the experiment up where A stopped.
    clone = tmp_path / "host-b"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    out = sh([*experiment, "--name", "continued"], clone, env, timeout=900)
    assert stages_run(out) == list(STAGES[len(finished) :]), out[-3000:]
    assert all(f"Stage '{s}' is cached" in out for s in finished), out[-3000:]
    assert "continued" in sh(["dvc", "exp", "show", "--json"], clone, env)
    assert json.loads((clone / "eval" / "metrics.json").read_text())["attacks"]["seqmia"]
