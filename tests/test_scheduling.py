"""Scheduling for real: a Prefect server on 127.0.0.1, a process work pool and a worker, the
repository's prefect.yaml deployed, an experiment run through the worker, and a second clone that
reproduces it from the shared DVC remote without rerunning any stage."""

from __future__ import annotations

import json
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
