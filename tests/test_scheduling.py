"""Scheduling for real: a Prefect server on 127.0.0.1, a process work pool and a worker, the
repository's prefect.yaml deployed, experiments run through the worker and through ``--serve``,
each recorded as its base commit plus its own overrides, with its stages as child flow runs; a
second clone at another path, with the data at another path, reproduces an experiment from the
shared DVC remote without rerunning any stage; an experiment stopped on one host continues on
another from its last finished stage; and a stage computed from two data-root paths gives the
same bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from seqmia.params.presets import apply_overrides
from tests.conftest import REPO, STAGES, stop_process_group
from tests.test_pipeline import make_repo, repro, stages_run, tiny_params

pytestmark = pytest.mark.slow

PREFECT = [sys.executable, "-m", "prefect"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def sh(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


class Api:
    """The few Prefect REST calls the tests need."""

    def __init__(self, env: dict[str, str]) -> None:
        self.http = httpx.Client(base_url=env["PREFECT_API_URL"].rstrip("/") + "/", timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def deployment(self, name: str) -> dict | None:
        response = self.http.get(f"deployments/name/{name}")
        return None if response.status_code == 404 else response.raise_for_status().json()

    def submit(self, deployment: str, parameters: dict) -> str:
        found = self.deployment(deployment)
        assert found, deployment
        run = self.call(
            "POST", f"deployments/{found['id']}/create_flow_run", {"parameters": parameters}
        )
        return run["id"]

    def wait(self, ids: Iterable[str], timeout: float, log: Path) -> dict[str, dict]:
        ids, deadline = list(ids), time.monotonic() + timeout
        while True:
            runs = {i: self.call("GET", f"flow_runs/{i}") for i in ids}
            if all(r["state"]["type"] in FINAL for r in runs.values()):
                return runs
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(2)

    def children(self, run_id: str) -> list[dict]:
        body = {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
        return self.call("POST", "flow_runs/filter", body)


def experiment_commit(repo: Path, name: str) -> str:
    """The git commit of DVC experiment ``name`` (``refs/exps/<baseline>/<name>``)."""
    refs = sh(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/"],
        repo,
        dict(os.environ),
    )
    found = [line.split()[1] for line in refs.splitlines() if line.split()[0].endswith("/" + name)]
    assert len(found) == 1, refs
    return found[0]


def show(repo: Path, commit: str, path: str) -> str:
    return sh(["git", "show", f"{commit}:{path}"], repo, dict(os.environ))


def check_records(repo: Path, head: dict, runs: dict[str, dict], finished: dict[str, dict]) -> None:
    """Each experiment's params are HEAD's plus its own overrides, nothing else; the flow run is
    named after the experiment, and the experiment records the flow run and both diffs."""
    base = sh(["git", "rev-parse", "HEAD"], repo, dict(os.environ)).strip()
    for name, overrides in runs.items():
        commit = experiment_commit(repo, name)
        assert yaml.safe_load(show(repo, commit, "params.yaml")) == apply_overrides(head, overrides)
        record = json.loads(show(repo, commit, "experiment.json"))
        run = finished[record["flow_run_id"]]
        assert run["name"] == name and record["base"] == base
        assert record["overrides"] == overrides
        assert set(record["params_diff"]) == set(overrides)


def test_scheduled_experiments_are_isolated_recorded_and_shared(
    tmp_path: Path, prefect_env: dict[str, str], digits_root: Path
) -> None:
    repo = make_repo(tmp_path / "host-a", tiny_params())
    for name in ("prefect.yaml", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    env = {**prefect_env, "SEQMIA_DATA_ROOT": str(digits_root), "PYTHONPATH": ""}
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "deployments"], repo, env)
    params_before = (repo / "params.yaml").read_bytes()
    head = yaml.safe_load(params_before)
    api = Api(env)

    # Deployed from another host's checkout path: the worker must use its own, read at run time.
    sh([*PREFECT, "work-pool", "create", "seqmia", "--type", "process", "--overwrite"], repo, env)
    sh(
        [*PREFECT, "--no-prompt", "deploy", "--all"],
        repo,
        {**env, "SEQMIA_REPO": str(tmp_path / "deploying-host")},
    )
    log = tmp_path / "worker.log"
    worker = start(
        [*PREFECT, "worker", "start", "--pool", "seqmia", "--type", "process"],
        repo,
        {**env, "SEQMIA_REPO": str(repo)},
        log,
    )
    # The per-host remote of docs/experiments.md, added and not committed.
    remote = str(tmp_path / "dvc-remote")
    sh(["dvc", "remote", "add", "-d", "shared", remote], repo, env)
    pool_runs = {"epochs": {"attack.epochs": 2}, "lr": {"attack.lr": 5e-3}}
    submit = [sys.executable, "-m", "flows.experiment", "--submit", "experiment/experiment"]
    try:  # submitted at once (the docs' command); the concurrency limit runs them back to back
        ids = {}
        for name, o in pool_runs.items():
            sets = [a for key, value in o.items() for a in ("-S", f"{key}={value}")]
            out = sh([*submit, *sets, "--name", name], repo, env)
            assert f"queued flow run {name} (" in out, out
            ids[name] = out.split(f"queued flow run {name} (")[1].split(")")[0]
        finished = api.wait(ids.values(), 1500, log)
    finally:
        stop_process_group(worker)
    states = [r["state"]["type"] for r in finished.values()]
    assert states == ["COMPLETED"] * 2, log.read_text()[-4000:]
    check_records(repo, head, pool_runs, finished)
    first, second = sorted(finished.values(), key=lambda r: r["start_time"])
    assert second["start_time"] >= first["end_time"]  # back to back, the second after the first
    # Stages are child flow runs: all of them in the first run; in the second only what its override
    # changes (the others come back from DVC's run-cache).
    children = api.children(first["id"])
    assert sorted(c["name"] for c in children) == sorted(f"{first['name']}-{s}" for s in STAGES)
    assert all(c["state"]["type"] == "COMPLETED" for c in children)
    assert sorted(c["name"] for c in api.children(second["id"])) == [
        f"{second['name']}-attack",
        f"{second['name']}-evaluate",
    ]

    # --serve registers its own deployment; the pool deployment keeps its pool and limit.
    log = tmp_path / "serve.log"
    served = start([sys.executable, "-m", "flows.experiment", "--serve"], repo, env, log)
    serve_runs = {"gamma": {"attack.gamma": 0.5}, "hidden": {"attack.hidden_size": 8}}
    try:
        deadline = time.monotonic() + 180
        while api.deployment("experiment/experiment-serve") is None:
            assert served.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        pool = api.deployment("experiment/experiment")
        assert pool["work_pool_name"] == "seqmia" and pool["global_concurrency_limit"]["limit"] == 1
        ids = {
            name: api.submit("experiment/experiment-serve", {"overrides": o, "name": name})
            for name, o in serve_runs.items()
        }
        finished_served = api.wait(ids.values(), 900, log)
    finally:
        stop_process_group(served)
    runs = finished_served.values()
    assert all(r["state"]["type"] == "COMPLETED" for r in runs), log.read_text()[-4000:]
    assert max(r["start_time"] for r in runs) < min(r["end_time"] for r in runs)  # side by side
    check_records(repo, head, serve_runs, finished_served)

    # The repository's checkout is untouched: same params.yaml, nothing changed but the remote
    # the user added, no worktree left.
    assert (repo / "params.yaml").read_bytes() == params_before
    assert sh(["git", "status", "--porcelain"], repo, env).strip() == "M .dvc/config"
    assert len(sh(["git", "worktree", "list"], repo, env).splitlines()) == 1
    assert "epochs" in sh(["dvc", "exp", "show", "--json"], repo, env)

    # Host B: a clone at another path, with the dataset at another path, runs the same
    # experiment: every stage comes back from the remote's run-cache, with the same outputs.
    elsewhere = tmp_path / "host-b-datasets"
    shutil.copytree(digits_root, elsewhere)
    clone = tmp_path / "host-b" / "checkout"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    sh(["dvc", "remote", "add", "-d", "shared", remote], clone, env)  # the per-host step
    out = sh(
        [sys.executable, "-m", "flows.experiment", "-S", "attack.epochs=2", "--name", "again"],
        clone,
        {**env, "SEQMIA_DATA_ROOT": str(elsewhere)},
    )
    assert stages_run(out) == [], out[-3000:]
    assert sum(f"Stage '{s}' is cached" in out for s in STAGES) == len(STAGES), out[-3000:]
    lock_a = yaml.safe_load(show(repo, experiment_commit(repo, "epochs"), "dvc.lock"))
    lock_b = yaml.safe_load(show(clone, experiment_commit(clone, "again"), "dvc.lock"))
    assert lock_a["stages"] == lock_b["stages"]


def test_an_experiment_stopped_on_one_host_continues_on_another(
    tmp_path: Path, prefect_env: dict[str, str], digits_root: Path
) -> None:
    remote = tmp_path / "dvc-remote"
    repo = make_repo(tmp_path / "host-a", tiny_params())
    env = {
        **prefect_env,
        "SEQMIA_DATA_ROOT": str(digits_root),
        "PYTHONPATH": "",
        "PYTHONUNBUFFERED": "1",
    }
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], repo, env)
    sh(["git", "commit", "-qam", "remote"], repo, env)
    experiment = [sys.executable, "-m", "flows.experiment", "-S", "attack.epochs=2"]

    # Host A: stopped (SIGTERM, as a stopping worker or a pre-empted host sends) as soon as the
    # reference stage has finished and been pushed, while distill runs.
    finished = STAGES[: STAGES.index("reference") + 1]
    scratch = tmp_path / "host-a-tmp"  # where its temporary workspace lives
    scratch.mkdir()
    log_path = tmp_path / "host-a.log"
    host_a = start([*experiment, "--name", "cut"], repo, {**env, "TMPDIR": str(scratch)}, log_path)
    done = "Task run 'stage-reference' - Finished in state Completed"
    try:
        deadline = time.monotonic() + 600
        while done not in log_path.read_text():
            assert host_a.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(3)  # distill has started
        host_a.send_signal(signal.SIGTERM)
        host_a.wait(timeout=90)
    finally:
        if host_a.poll() is None:
            os.killpg(host_a.pid, signal.SIGKILL)
            host_a.wait()
    # It stopped cleanly: no stage process left running in its workspace, workspace removed.
    inside = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(scratch) in os.readlink(proc / "cwd"):
                inside.append(proc.name)
        except OSError:
            continue
    assert inside == [], log_path.read_text()[-3000:]
    assert list(scratch.glob("seqmia-*")) == []
    assert len(sh(["git", "worktree", "list"], repo, env).splitlines()) == 1
    # Its states say what happened: the stage it stopped is Cancelled, not Crashed, and the run
    # names the host and process that stopped.
    api = Api(env)
    runs = {
        r["name"]: r
        for r in api.call(
            "POST", "flow_runs/filter", {"flow_runs": {"name": {"any_": ["cut", "cut-distill"]}}}
        )
    }
    stage, run = runs["cut-distill"]["state"], runs["cut"]["state"]
    assert stage["type"] == "CANCELLED", stage
    assert stage["message"] == "stopped with experiment cut, which was cancelled or stopped"
    assert run["type"] == "CRASHED" and run["message"].startswith("Stopped on "), run
    assert f":{host_a.pid}" in run["message"] and "Submit it again" in run["message"]

    # Host B: a clone at another path, data at another path, picks it up where A stopped.
    elsewhere = tmp_path / "host-b-datasets"
    shutil.copytree(digits_root, elsewhere)
    clone = tmp_path / "host-b" / "checkout"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    env_b = {**env, "SEQMIA_DATA_ROOT": str(elsewhere)}
    out = sh([*experiment, "--name", "continued"], clone, env_b)
    assert stages_run(out) == list(STAGES[len(finished) :]), out[-3000:]
    assert all(f"Stage '{s}' is cached" in out for s in finished), out[-3000:]
    assert "continued" in sh(["dvc", "exp", "show", "--json"], clone, env)


def test_a_stage_gives_the_same_bytes_from_any_data_root_path(
    tmp_path: Path, prefect_env: dict[str, str], digits_root: Path
) -> None:
    """prepare, partition and train computed in two checkouts at different paths, from copies of
    the dataset at different paths, at different times: byte-identical outputs, so DVC hashes
    (and run-cache entries) match across hosts."""
    elsewhere = tmp_path / "second" / "data root"
    shutil.copytree(digits_root, elsewhere)
    outputs = []
    for name, root in (("first", digits_root), ("second", elsewhere)):
        repo = make_repo(tmp_path / name / "repo", tiny_params())
        env = {**prefect_env, "SEQMIA_DATA_ROOT": str(root), "PYTHONPATH": ""}
        assert stages_run(repro(repo, env, "train").stdout) == ["prepare", "partition", "train"]
        outputs.append(
            {
                str(p.relative_to(repo)): p.read_bytes()
                for p in sorted((repo / "data").rglob("*"))
                if p.is_file() and p.name != ".gitignore"
            }
        )
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        outputs[-1]["lock"] = json.dumps({s: lock[s]["outs"] for s in lock}).encode()
    assert outputs[0].keys() == outputs[1].keys()
    assert {"data/prepared/info.json", "data/models/target.json"} <= outputs[0].keys()
    assert [k for k in outputs[0] if outputs[0][k] != outputs[1][k]] == []
    assert str(digits_root).encode() not in outputs[0]["data/prepared/info.json"]


def test_a_cancelled_experiment_cancels_its_running_stage(
    tmp_path: Path, prefect_env: dict[str, str], digits_root: Path
) -> None:
    """Cancelled from the API (as the UI's Cancel does) while its train stage runs: the
    experiment ends Cancelled, and so does the stage it stopped, not Crashed."""
    params = tiny_params()
    params["train"]["epochs"] = 400  # still training when the cancellation comes
    repo = make_repo(tmp_path / "repo", params)
    env = {**prefect_env, "SEQMIA_DATA_ROOT": str(digits_root), "PYTHONPATH": ""}
    api = Api(env)
    log = tmp_path / "serve.log"
    served = start([sys.executable, "-m", "flows.experiment", "--serve"], repo, env, log)
    try:
        deadline = time.monotonic() + 180
        while api.deployment("experiment/experiment-serve") is None:
            assert served.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        run_id = api.submit("experiment/experiment-serve", {"overrides": {}, "name": "called-off"})
        deadline = time.monotonic() + 600
        while not any(
            c["name"] == "called-off-train" and c["state"]["type"] == "RUNNING"
            for c in api.children(run_id)
        ):
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        time.sleep(5)  # training
        api.call(
            "POST",
            f"flow_runs/{run_id}/set_state",
            {"state": {"type": "CANCELLING", "message": "called off"}, "force": True},
        )
        finished = api.wait([run_id], 300, log)[run_id]
    finally:
        stop_process_group(served)
    assert finished["state"]["type"] == "CANCELLED", finished["state"]
    stages = {c["name"]: c["state"] for c in api.children(run_id)}
    assert stages["called-off-train"]["type"] == "CANCELLED", stages
    assert "stopped with experiment called-off" in stages["called-off-train"]["message"]
    assert all(s["type"] == "COMPLETED" for n, s in stages.items() if n != "called-off-train")
    assert len(sh(["git", "worktree", "list"], repo, env).splitlines()) == 1  # workspace removed
