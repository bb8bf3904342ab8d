"""Without PREFECT_API_URL the stages of a run share one local Prefect server, started by the
first stage and stopped by itself once idle (flows/_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import flows
from flows import _server
from flows._server import LEASES_DIR, STATE_FILE, healthy
from tests.test_pipeline import make_repo, tiny_params

IDLE_SECONDS = 5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _flow_run_names(api_url: str) -> list[str]:
    request = urllib.request.Request(
        f"{api_url}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.loads(response.read())
    with urllib.request.urlopen(f"{api_url}/flows/filter", data=b"{}", timeout=10) as response:
        flows = {f["id"]: f["name"] for f in json.loads(response.read())}
    return sorted(flows[r["flow_id"]] for r in runs if r["state_type"] == "COMPLETED")


def _last_log_of_each_run(api_url: str) -> list[str]:
    """The last log message the server holds for each flow run."""

    def post(path: str, body: dict) -> list[dict]:
        request = urllib.request.Request(f"{api_url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    last = []
    for run in post("/flow_runs/filter", {}):
        logs = post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}},
                                     "sort": "TIMESTAMP_ASC"})  # fmt: skip
        last.append(logs[-1]["message"] if logs else "")
    return last


@pytest.mark.parametrize(
    ("argv", "stage"),
    [
        (["python", "-m", "flows.train"], "train"),
        (["python", "-m", "flows.evaluate", "--params", "p.yaml"], "evaluate"),
        (["python", "-m", "flows.train", "--help"], None),  # asks for help: no server
        (["python", "-m", "flows.experiment"], None),  # not a stage
        (["python", "-m", "pytest", "tests"], None),
        (["python", "script.py"], None),
    ],
)
def test_only_a_stage_run_as_a_module_begins_the_server_early(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], stage: str | None
) -> None:
    monkeypatch.setattr("sys.orig_argv", argv)
    assert flows._running_stage() == stage


def test_stop_shared_server_ends_the_recorded_keeper_and_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    _server.stop_shared_server()  # nothing recorded: nothing to do
    keeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _server._launched[keeper.pid] = keeper  # as if launched here, so that it is reaped
    try:
        (tmp_path / STATE_FILE).write_text(json.dumps({"url": "", "pid": keeper.pid}))
        _server.stop_shared_server(wait=30)
        assert keeper.poll() is not None
    finally:
        _server._launched.pop(keeper.pid, None)
        if keeper.poll() is None:
            keeper.kill()


@pytest.mark.slow
def test_a_begun_server_is_awaited_not_started_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a stage does: begin the start before its imports, then wait for what is left."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    keeper = None
    try:
        _server.begin_shared_server(timeout=180)
        state = json.loads((tmp_path / "home" / STATE_FILE).read_text())
        keeper = state["pid"]
        assert state["since"] <= time.time() and not healthy(state["url"])  # not waited for
        url, waited = _server.shared_server_url(timeout=180)
        assert url == state["url"] and healthy(url) and waited > 0
        assert json.loads((tmp_path / "home" / STATE_FILE).read_text()) == state  # not another
        assert _server.shared_server_url(timeout=180) == (url, 0.0)  # answering: no wait
        assert (tmp_path / "home" / LEASES_DIR / str(os.getpid())).exists()
    finally:
        if keeper is not None and _alive(keeper):
            os.kill(keeper, signal.SIGTERM)


@pytest.mark.slow
def test_a_begun_server_stops_when_the_stage_uses_another_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    _server.begin_shared_server(timeout=180)
    keeper = json.loads((tmp_path / "home" / STATE_FILE).read_text())["pid"]
    launched = _server._launched[keeper]
    _server.stop_begun_server()
    assert launched.wait(timeout=60) is not None
    assert not (tmp_path / "home" / STATE_FILE).exists()


@pytest.mark.slow
def test_stages_share_one_server_that_stops_when_idle(tmp_path: Path, digits_root: Path) -> None:
    home = tmp_path / "prefect_home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SEQMIA_"))
    }  # fmt: skip
    env.update(
        PREFECT_HOME=str(home), SEQMIA_SERVER_IDLE=str(IDLE_SECONDS), PYTHONPATH="",
        SEQMIA_DATA_ROOT=str(digits_root), PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DVC_NO_ANALYTICS="1",
    )  # fmt: skip
    repo = make_repo(tmp_path / "repo", tiny_params())
    keeper = None
    try:
        out = subprocess.run(
            ["dvc", "repro", "partition"], cwd=repo, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        state = json.loads((home / STATE_FILE).read_text())
        keeper = state["pid"]
        assert _alive(keeper) and healthy(state["url"])
        # the first stage waited for the server it began before its imports; only it did
        assert out.stderr.count("shared server start seconds:") == 1, out.stderr[-3000:]
        assert _flow_run_names(state["url"]) == ["partition", "prepare"]

        # A later stage finds the same server instead of starting another.
        out = subprocess.run(
            ["python", "-m", "flows.partition"], cwd=repo, env=env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads((home / STATE_FILE).read_text()) == state
        assert _flow_run_names(state["url"]) == ["partition", "partition", "prepare"]
        # each stage's process ended without its modules' teardown, after sending its last logs
        assert _last_log_of_each_run(state["url"]) == ["Finished in state Completed()"] * 3

        # With no stage running it stops on its own, and forgets itself.
        deadline = time.monotonic() + IDLE_SECONDS + 60
        while _alive(keeper) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(keeper), "the shared server did not stop when idle"
        assert not (home / STATE_FILE).exists()
        assert not healthy(state["url"])
        assert not list((home / LEASES_DIR).iterdir())
    finally:
        if keeper is not None and _alive(keeper):
            os.killpg(keeper, signal.SIGTERM)
