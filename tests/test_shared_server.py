"""Without PREFECT_API_URL the stages of a run share one local Prefect server, started by the
first stage and stopped by itself once idle (flows/_server.py). Whether its keeper is alive is
known from a file lock that the keeper holds, never from a process id written in a file, so a
stale or hand-written state file can neither be signalled through nor redirect the stages."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows import _server
from flows._server import LEASE_FILE, STATE_FILE, healthy, parse_state, published_state
from tests.test_pipeline import make_repo, tiny_params

IDLE_SECONDS = 5
GOOD = {"url": "http://127.0.0.1:4200/api", "since": 1.5}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '"http://127.0.0.1:4200/api"',
        "{}",
        json.dumps({"url": GOOD["url"]}),  # no start time
        json.dumps({**GOOD, "pid": 1234}),  # an older keeper's record, or a hand-written pid
        json.dumps({**GOOD, "pid": -1}),
        json.dumps({**GOOD, "pid": 0}),
        json.dumps({"url": GOOD["url"], "pid": "1"}),
        json.dumps({**GOOD, "url": "http://10.1.2.3:4200/api"}),  # another machine
        json.dumps({**GOOD, "url": "http://localhost:4200/api"}),
        json.dumps({**GOOD, "url": "http://127.0.0.1:4200/api/../other"}),
        json.dumps({**GOOD, "url": "https://127.0.0.1:4200/api"}),
        json.dumps({**GOOD, "url": "http://127.0.0.1:0/api"}),
        json.dumps({**GOOD, "url": "http://127.0.0.1:70000/api"}),
        json.dumps({**GOOD, "url": 4200}),
        json.dumps({**GOOD, "since": "1.5"}),
        json.dumps({**GOOD, "since": True}),
        '{"url": "http://127.0.0.1:4200/api", "since": NaN}',
    ],
)
def test_a_state_record_other_than_a_keepers_is_refused(text: str) -> None:
    assert parse_state(text) is None


def test_a_keepers_state_record_is_read() -> None:
    assert parse_state(json.dumps(GOOD)) == GOOD
    assert parse_state(json.dumps({**GOOD, "since": 2})) == {**GOOD, "since": 2.0}


def test_a_state_file_counts_only_while_its_keeper_holds_its_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state_file = tmp_path / STATE_FILE
    assert published_state(tmp_path) is None  # no file
    state_file.write_text(json.dumps(GOOD))
    assert published_state(tmp_path) is None  # a stale file: its keeper is gone
    with open(state_file) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a live keeper holds it
        assert published_state(tmp_path) == GOOD
        state_file.write_text('{"url": "http://10.1.2.3:80/api", "pid": -1}')  # same file
        assert published_state(tmp_path) is None  # held, but not a keeper's record
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "ignoring" in warning and STATE_FILE in warning


def test_a_fifo_named_like_the_state_file_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / STATE_FILE)
    assert published_state(tmp_path) is None


def test_the_server_code_sends_no_signal() -> None:
    """The keeper stops on a request file, or on its own when idle: nothing in the module may
    send a signal to a process (its only stops are of the server child it holds)."""
    source = Path(_server.__file__).read_text()
    assert "os.kill" not in source and "killpg" not in source


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
        request = urllib.request.Request(
            f"{api_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    last = []
    for run in post("/flow_runs/filter", {}):
        logs = post(
            "/logs/filter",
            {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "sort": "TIMESTAMP_ASC"},
        )
        last.append(logs[-1]["message"] if logs else "")
    return last


def _keeper_alive(home: Path) -> bool:
    return _server._held(home / STATE_FILE)


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.slow
def test_a_stale_state_file_naming_a_live_process_is_replaced_and_nobody_signalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The normal case after a reboot or a killed keeper: the file names a process that is now
    someone else's. It is neither signalled nor asked for its address; a new keeper starts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PREFECT_HOME", str(home))
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (home / STATE_FILE).write_text(
            json.dumps(
                {"url": "http://10.1.2.3:4200/api", "pid": bystander.pid, "since": time.time()}
            )
        )
        url, waited = _server.shared_server_url(timeout=180)
        assert url.startswith("http://127.0.0.1:") and healthy(url) and waited > 0
        assert parse_state((home / STATE_FILE).read_text())["url"] == url
        assert _server.shared_server_url(timeout=180) == (url, 0.0)  # answering: no wait
        _server.stop_shared_server(wait=60)  # by request: the keeper stops its own server
        assert not _keeper_alive(home)
        # It withdraws its record before it stops the server and waits for it to exit.
        assert _wait_until(lambda: not healthy(url), 60), "the server still answers"
        assert not (home / STATE_FILE).exists()
        assert bystander.poll() is None, "a process named in the state file was signalled"
    finally:
        bystander.kill()  # started by this test
        bystander.wait()


@pytest.mark.slow
def test_a_server_that_never_answers_is_given_up_by_its_keeper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that hangs at start: its keeper stops it after the start-up time and exits; the
    stage gets one error with the end of the keeper's log, and no process is left behind."""
    home, fake = tmp_path / "home", tmp_path / "fake"
    fake.mkdir()
    (fake / "uvicorn.py").write_text("import time\nprint('hanging on purpose')\ntime.sleep(600)\n")
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.setenv("PYTHONPATH", str(fake))  # the keeper's `python -m uvicorn` finds this
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start") as raised:
        _server.shared_server_url(timeout=5)
    assert "did not answer within 5 s" in str(raised.value)
    assert time.monotonic() - began < 60
    assert _wait_until(lambda: not _keeper_alive(home), 30)


@pytest.mark.slow
def test_stages_share_one_server_that_stops_when_idle(
    tmp_path: Path, digits_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "prefect_home"
    # Long enough to outlast the gap between two stages (a stage's imports come before its
    # lease, several seconds on a loaded machine), short enough for the test to see the stop.
    idle = 20
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SEQMIA_"))}
    env.update(
        PREFECT_HOME=str(home),
        SEQMIA_SERVER_IDLE=str(idle),
        PYTHONPATH="",
        SEQMIA_DATA_ROOT=str(digits_root),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DVC_NO_ANALYTICS="1",
    )
    repo = make_repo(tmp_path / "repo", tiny_params())
    try:
        out = subprocess.run(
            ["dvc", "repro", "partition"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        state = json.loads((home / STATE_FILE).read_text())
        assert _keeper_alive(home) and healthy(state["url"])
        # the first stage waited for the server it started; only it did
        assert out.stderr.count("shared server start seconds:") == 1, out.stderr[-3000:]
        assert _flow_run_names(state["url"]) == ["partition", "prepare"]

        # A later stage finds the same server instead of starting another.
        out = subprocess.run(
            ["python", "-m", "flows.partition"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads((home / STATE_FILE).read_text()) == state
        assert _flow_run_names(state["url"]) == ["partition", "partition", "prepare"]
        # each stage's last logs reached the server before its process ended
        assert _last_log_of_each_run(state["url"]) == ["Finished in state Completed()"] * 3

        # With no stage running it stops on its own, and forgets itself.
        assert not _server._held(home / LEASE_FILE, exclusive=True)  # no lease outlives a stage
        assert _wait_until(lambda: not _keeper_alive(home), idle + 60), (
            "the shared server did not stop when idle"
        )
        assert not (home / STATE_FILE).exists()
        # The keeper withdraws its record first (no stage may lease a server about to stop),
        # then stops the server and waits for it: the server goes down shortly after.
        assert _wait_until(lambda: not healthy(state["url"]), 60), "the server still answers"
    finally:
        monkeypatch.setenv("PREFECT_HOME", str(home))
        _server.stop_shared_server(wait=60)  # if the test failed with the keeper running
