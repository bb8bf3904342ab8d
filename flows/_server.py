"""One local Prefect server that the stages of a run share, started by the first stage that needs
it and stopped by itself once no stage has used it for a while.

Without ``PREFECT_API_URL``, Prefect would start a temporary server in every stage process (about
10 s each) and stop it when the stage ends. Instead, ``shared_server_url`` (called by each stage)
looks for the server recorded under ``$PREFECT_HOME``; if none answers, it starts this file as a
detached keeper process, which runs the same server Prefect's temporary one is (uvicorn serving
``prefect.server.api.server:create_app``, UI off, state in ``$PREFECT_HOME``). Each stage holds a
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


def _start_keeper(home: Path, timeout: float) -> dict:
    """Start the keeper (and through it the server) detached from this process; wait until the
    API answers. Returns the state to record."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    idle = os.environ.get(IDLE_ENV) or str(DEFAULT_IDLE_SECONDS)
    with open(home / LOG_FILE, "ab") as log:
        keeper = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--home", str(home),
             "--port", str(port), "--idle", idle],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=home,
            start_new_session=True,  # not stopped by the Ctrl-C or end of the stage that started it
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not healthy(url, timeout=1.0):
        if keeper.poll() is not None or time.monotonic() > deadline:
            if keeper.poll() is None:
                os.kill(keeper.pid, signal.SIGTERM)
            tail = (home / LOG_FILE).read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the shared Prefect server did not start; its log ends:\n{tail}")
        time.sleep(0.2)
    return {"url": url, "pid": keeper.pid}


def shared_server_url(timeout: float = 180.0) -> tuple[str, float]:
    """API URL of the run's shared server (started if none answers), leased to this process
    until it exits, and the seconds this call spent starting it (0 if it was running)."""
    home = prefect_home()
    started = 0.0
    with _locked(home):
        state = read_state(home)
        if not (state and _alive(int(state["pid"])) and healthy(state["url"])):
            began = time.monotonic()
            state = _start_keeper(home, timeout)
            started = time.monotonic() - began
            (home / STATE_FILE).write_text(json.dumps(state))
        leases = home / LEASES_DIR
        leases.mkdir(exist_ok=True)
        (leases / str(os.getpid())).touch()
    return state["url"], started


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
