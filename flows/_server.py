"""One local Prefect server that the stages of a run share, started by the first stage that needs
it and stopped by itself once no stage has used it for a while.

Without ``PREFECT_API_URL``, Prefect would start a temporary server in every stage process (about
10 s each) and stop it when the stage ends. Instead, ``shared_server_url`` (called by each stage)
looks for the server recorded under ``$PREFECT_HOME``; if none answers, it starts this file as a
detached keeper process, which runs the same server Prefect's temporary one is (uvicorn serving
``prefect.server.api.server:create_app``, UI off, state in ``$PREFECT_HOME``). A stage run as
``python -m flows.<stage>`` begins that start before its own imports (``begin_shared_server``,
called from ``flows/__init__.py``), so the server's start-up (mostly importing Prefect's server,
about 2.5 s) overlaps the stage's imports on the other core. Each stage holds a
lease (a file named after its process id) while it runs; the keeper stops the server when no
lease has been held for ``$SEQMIA_SERVER_IDLE`` seconds (default 120). A lock file serialises
starting, leasing and stopping, so a stage never gets a server that is about to stop.

This module imports only the standard library: the keeper must not pay Prefect's import time.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# "shared" (default): the stages share one server as above; "temporary": Prefect's own temporary
# server in each stage process, as Prefect does without PREFECT_API_URL.
SERVER_ENV = "SEQMIA_PREFECT_SERVER"
IDLE_ENV = "SEQMIA_SERVER_IDLE"
DEFAULT_IDLE_SECONDS = 120.0
STATE_FILE = "seqmia-server.json"
LOCK_FILE = "seqmia-server.lock"
LOG_FILE = "seqmia-server.log"
LEASES_DIR = "seqmia-server.leases"
POLL_SECONDS = 1.0


def server_mode() -> str:
    """``$SEQMIA_PREFECT_SERVER``, "shared" when unset (the caller checks the value)."""
    return os.environ.get(SERVER_ENV) or "shared"


def prefect_home() -> Path:
    """``$PREFECT_HOME``, or Prefect's default ``~/.prefect``."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True if the Prefect API at ``api_url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def read_state(home: Path) -> dict | None:
    """The recorded shared server (``url``, keeper ``pid``), or None."""
    try:
        return json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def live_leases(home: Path) -> list[int]:
    """Process ids of the stages holding a lease; leases of processes that are gone are removed."""
    folder = home / LEASES_DIR
    pids = []
    for entry in folder.glob("*") if folder.is_dir() else []:
        pid = int(entry.name) if entry.name.isdigit() else -1
        if pid > 0 and _alive(pid):
            pids.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return pids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Keepers this process launched, by pid: a dead one stays a zombie (and looks alive to kill(0))
# until this process reaps it, which ``poll`` does.
_launched: dict[int, subprocess.Popen] = {}


def _keeper_running(pid: int) -> bool:
    keeper = _launched.get(pid)
    return keeper.poll() is None if keeper is not None else _alive(pid)


def _launch_keeper(home: Path) -> dict:
    """Start the keeper (and through it the server) detached from this process, without waiting
    for the server; returns the state to record (``url``, keeper ``pid``, ``since``: its start
    in seconds since the epoch)."""
    port = _free_port()
    idle = os.environ.get(IDLE_ENV) or str(DEFAULT_IDLE_SECONDS)
    with open(home / LOG_FILE, "ab") as log:
        keeper = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--home", str(home),
             "--port", str(port), "--idle", idle],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=home,
            start_new_session=True,  # not stopped by the Ctrl-C or end of the stage that started it
        )  # fmt: skip
    _launched[keeper.pid] = keeper
    return {"url": f"http://127.0.0.1:{port}/api", "pid": keeper.pid, "since": time.time()}


def _await_server(home: Path, state: dict, timeout: float) -> float:
    """Wait until the server of ``state`` answers; returns the seconds waited (0 if it answered
    at once). A keeper that exits, or whose server does not answer ``timeout`` seconds after
    the keeper started, is stopped and reported with the end of its log."""
    began = time.monotonic()
    pid = int(state["pid"])
    while not healthy(state["url"], timeout=1.0):
        if not _keeper_running(pid) or time.time() > float(state.get("since", 0)) + timeout:
            if _keeper_running(pid):
                os.kill(pid, signal.SIGTERM)
            (home / STATE_FILE).unlink(missing_ok=True)
            tail = (home / LOG_FILE).read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the shared Prefect server did not start; its log ends:\n{tail}")
        time.sleep(0.05)
    waited = time.monotonic() - began
    return waited if waited > 0.05 else 0.0


def _lease(home: Path) -> None:
    leases = home / LEASES_DIR
    leases.mkdir(exist_ok=True)
    (leases / str(os.getpid())).touch()


def _usable(state: dict | None, timeout: float) -> bool:
    """A recorded server that answers, or whose keeper runs and is still within its start-up
    time (begun by a stage that is importing, or by this one)."""
    if not state or not _keeper_running(int(state["pid"])):
        return False
    starting = time.time() <= float(state.get("since", 0)) + timeout
    return starting or healthy(state["url"])


def startup_timeout() -> float:
    """Seconds a server may take to start: ``$PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``,
    the setting of Prefect's own temporary server (default 180 here)."""
    return float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 180)


def _recorded_or_launched(home: Path, timeout: float) -> dict:
    """The recorded server if it is usable; otherwise a newly launched keeper's state, recorded
    (a keeper whose server hangs past its start-up time is stopped first). Call under the lock."""
    state = read_state(home)
    if _usable(state, timeout):
        return state
    if state and _keeper_running(int(state["pid"])):  # a keeper whose server hangs
        os.kill(int(state["pid"]), signal.SIGTERM)
    state = _launch_keeper(home)
    (home / STATE_FILE).write_text(json.dumps(state))
    return state


def begin_shared_server(timeout: float = 180.0) -> None:
    """Start the run's shared server without waiting for it, unless a usable one is recorded,
    and lease it to this process. A stage calls this before its imports, so that the server
    starts on the other core while the stage imports Prefect and torch; ``shared_server_url``
    then waits only for what is left of its start."""
    home = prefect_home()
    with _locked(home):
        _recorded_or_launched(home, timeout)
        _lease(home)


def stop_begun_server() -> None:
    """Stop the keepers this process began (``begin_shared_server``) when the stage turns out to
    use another Prefect API (one set in a Prefect profile, which only Prefect's settings see)."""
    home = prefect_home()
    with _locked(home):
        state = read_state(home)
        for pid, keeper in list(_launched.items()):
            if state and int(state["pid"]) == pid:
                (home / STATE_FILE).unlink(missing_ok=True)
            if keeper.poll() is None:
                keeper.terminate()
            del _launched[pid]


def stop_shared_server(wait: float = 60.0) -> None:
    """Stop the shared server recorded under ``$PREFECT_HOME``, if one runs, and wait up to
    ``wait`` seconds for its keeper to exit (it stops its server first); ``RuntimeError`` if it
    does not. The benchmark calls this so that a run's first stage pays the server's start."""
    state = read_state(prefect_home())
    if not state:
        return
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while _keeper_running(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the shared Prefect server's keeper (pid {pid}) did not stop "
                               f"within {wait:g} s")  # fmt: skip
        time.sleep(0.2)


def shared_server_url(timeout: float = 180.0) -> tuple[str, float]:
    """API URL of the run's shared server (started if no usable one is recorded), leased to this
    process until it exits, and the seconds this call waited for it to start (0 if it was
    answering)."""
    home = prefect_home()
    with _locked(home):
        state = _recorded_or_launched(home, timeout)
        waited = _await_server(home, state, timeout)
        _lease(home)
    return state["url"], waited


def keep(home: Path, port: int, idle: float) -> None:
    """Run the server on ``port`` until no stage has held a lease for ``idle`` seconds."""
    env = {
        **os.environ,
        # what Prefect sets for its own temporary server: no UI, ephemeral-mode settings
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env=env, cwd=home,
    )  # fmt: skip
    stop = False

    def on_signal(signum, frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    last_used = time.monotonic()
    while not stop and server.poll() is None:
        time.sleep(POLL_SECONDS)
        with _locked(home):
            if live_leases(home):
                last_used = time.monotonic()
            elif time.monotonic() - last_used > idle:
                stop = True
            if stop:
                state = read_state(home)
                if state and int(state["pid"]) == os.getpid():
                    (home / STATE_FILE).unlink(missing_ok=True)
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="keep a shared Prefect server until idle")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_SECONDS)
    args = parser.parse_args()
    keep(args.home, args.port, args.idle)
