"""One local Prefect server that the stages of a run share, started by the first stage that needs
it and stopped by itself once no stage has used it for a while.

Without ``PREFECT_API_URL``, Prefect would start a temporary server in every stage process (about
10 s each) and stop it when the stage ends. Instead, ``shared_server_url`` (called by each stage)
looks for the server published under ``$PREFECT_HOME``; if none is alive, it starts this file as a
detached keeper process, which runs the same server Prefect's temporary one is (uvicorn serving
``prefect.server.api.server:create_app``, UI off, state in ``$PREFECT_HOME``).

Every question "is it alive?" is answered by a file lock, never by a process id read back from a
file, and nothing here signals a process it did not start:
- the keeper publishes its address in ``seqmia-server.json`` and holds an exclusive lock on that
  file for as long as it runs; the kernel releases the lock when the keeper exits, however it
  exits, so a stale or hand-written file whose lock is free is ignored and replaced;
- each stage holds a shared lock on ``seqmia-server.lease`` while it runs; the keeper stops its
  server once nobody has held one for ``$SEQMIA_SERVER_IDLE`` seconds (default 120);
- a keeper is asked to stop by the file ``seqmia-server.stop``; it stops its server (a child it
  holds) and exits; it also gives up on a server that does not answer within the start-up time;
- ``seqmia-server.lock`` serialises starting, leasing and stopping, so a stage never gets a
  server that is about to stop.

This module imports only the standard library: the keeper must not pay Prefect's import time.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

IDLE_ENV = "SEQMIA_SERVER_IDLE"
DEFAULT_IDLE_SECONDS = 120.0
STATE_FILE = "seqmia-server.json"
LOCK_FILE = "seqmia-server.lock"
LEASE_FILE = "seqmia-server.lease"
STOP_FILE = "seqmia-server.stop"
LOG_FILE = "seqmia-server.log"
POLL_SECONDS = 1.0
# Seconds a launched keeper may take to publish its address (it imports the standard library only).
PUBLISH_SECONDS = 30.0
# The only address a keeper publishes: the loopback interface, a port, Prefect's API path.
_URL = re.compile(r"http://127\.0\.0\.1:(\d{1,5})/api")


def prefect_home() -> Path:
    """``$PREFECT_HOME``, or Prefect's default ``~/.prefect``."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser().absolute()


def startup_timeout() -> float:
    """Seconds a server may take to start: ``$PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``,
    the setting of Prefect's own temporary server (default 180 here)."""
    return float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 180)


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _held(path: Path, exclusive: bool = False) -> bool:
    """Whether another open file holds a lock on ``path`` that conflicts with a shared lock
    (``exclusive``: with any lock). False where there is no such file."""
    try:  # non-blocking: a FIFO under that name must not hang the stage
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True if the Prefect API at ``api_url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def parse_state(text: str) -> dict | None:
    """The keeper's record ``{"url": "http://127.0.0.1:PORT/api", "since": seconds since the
    epoch}`` from the text of ``seqmia-server.json``; None for anything else (not JSON, another
    shape, a URL that is not this machine's loopback address, a time that is not a number)."""
    try:
        state = json.loads(text)
    except ValueError:
        return None
    if not isinstance(state, dict) or set(state) != {"url", "since"}:
        return None
    url, since = state["url"], state["since"]
    match = _URL.fullmatch(url) if isinstance(url, str) else None
    if match is None or not 0 < int(match.group(1)) < 65536:
        return None
    if isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since):
        return None
    return {"url": url, "since": float(since)}


def published_state(home: Path) -> dict | None:
    """The address of the live keeper: the record in ``seqmia-server.json`` while a keeper holds
    its lock, else None. A record whose keeper is gone (after a reboot, a killed keeper) or that
    does not parse is ignored, with one line on stderr for the latter: a new keeper replaces it."""
    path = home / STATE_FILE
    if not _held(path):
        return None
    state = parse_state(_read(path))
    if state is None:
        print(
            f"warning: ignoring {path}: it does not hold a shared server's address; "
            "starting a new shared server",
            file=sys.stderr,
        )
    return state


# The shared locks on lease files that this process holds while it uses a server, by
# ``$PREFECT_HOME`` (released by the kernel when the process and the children it forked exit).
_leases: dict[Path, IO[bytes]] = {}


def _hold_lease(home: Path) -> None:
    if home in _leases:
        return
    fh = open(home / LEASE_FILE, "ab")  # noqa: SIM115 - held open for the life of the process
    fcntl.flock(fh, fcntl.LOCK_SH)
    _leases[home] = fh


def _launch_keeper(home: Path, timeout: float) -> dict:
    """Start a keeper (and through it the server) detached from this process and wait until it
    has published its address (not until the server answers); returns that state."""
    (home / STOP_FILE).unlink(missing_ok=True)  # a stop request meant for an earlier keeper
    idle = os.environ.get(IDLE_ENV) or str(DEFAULT_IDLE_SECONDS)
    with open(home / LOG_FILE, "ab") as log:
        keeper = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--home",
                str(home),
                "--idle",
                idle,
                "--timeout",
                str(timeout),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,  # not stopped by the Ctrl-C or end of the stage that started it
        )
    deadline = time.monotonic() + PUBLISH_SECONDS
    while keeper.poll() is None and time.monotonic() < deadline:
        state = parse_state(_read(home / STATE_FILE)) if _held(home / STATE_FILE) else None
        if state is not None:
            return state
        time.sleep(0.02)
    raise RuntimeError(f"the shared Prefect server's keeper did not start; {_log_tail(home)}")


def _read(path: Path, limit: int = 1000) -> str:
    """The first ``limit`` bytes of a regular file as text ("" where there is none)."""
    try:
        if not path.is_file():  # a FIFO would block the open
            return ""
        with open(path, "rb") as fh:
            return fh.read(limit).decode(errors="replace")
    except OSError:
        return ""


def _log_tail(home: Path) -> str:
    return f"its log ({home / LOG_FILE}) ends:\n{_read_tail(home / LOG_FILE)}"


def _read_tail(path: Path, size: int = 1500) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _await_server(home: Path, state: dict, timeout: float) -> None:
    """Wait until the server of ``state`` answers. Its keeper gives up on a server that does not
    answer ``timeout`` seconds after its start and exits; then this reports the end of its log."""
    while not healthy(state["url"], timeout=1.0):
        gone = not _held(home / STATE_FILE) or parse_state(_read(home / STATE_FILE)) != state
        if gone or time.time() > state["since"] + timeout + 2 * PUBLISH_SECONDS:
            raise RuntimeError(f"the shared Prefect server did not start; {_log_tail(home)}")
        time.sleep(0.05)


def shared_server_url(timeout: float = 180.0) -> tuple[str, float]:
    """API URL of the run's shared server (started if no keeper is alive), leased to this process
    until it exits, and the seconds this call waited for it to start (0 if it was answering)."""
    home = prefect_home()
    began = time.monotonic()
    with _locked(home):
        state = published_state(home) or _launch_keeper(home, timeout)
        _hold_lease(home)
    if healthy(state["url"]):
        return state["url"], 0.0
    _await_server(home, state, timeout)
    return state["url"], time.monotonic() - began


def stop_shared_server(wait: float = 60.0) -> None:
    """Ask the keeper published under ``$PREFECT_HOME``, if one is alive, to stop, and wait up to
    ``wait`` seconds for it to exit (it stops its server first); ``RuntimeError`` if it does not.
    The benchmark calls this so that a run's first stage pays the server's start."""
    home = prefect_home()
    with _locked(home):
        if published_state(home) is None:
            return
        (home / STOP_FILE).touch()
    deadline = time.monotonic() + wait
    while _held(home / STATE_FILE):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the shared Prefect server did not stop within {wait:g} s; {_log_tail(home)}"
            )
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _publish(home: Path, state: dict) -> IO[str]:
    """Write ``state`` to the state file with this process's exclusive lock on it, which is kept
    for as long as the returned file stays open: written and locked under a temporary name, then
    renamed into place, so that a reader never sees the file unlocked or half written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=home)
    fh = os.fdopen(fd, "w")
    fcntl.flock(fh, fcntl.LOCK_EX)
    fh.write(json.dumps(state))
    fh.flush()
    os.replace(tmp, home / STATE_FILE)
    return fh


def _unpublish(home: Path, published: IO[str]) -> None:
    """Remove the state file if it is still the one this keeper published. Call under the lock."""
    with contextlib.suppress(OSError):
        if os.stat(home / STATE_FILE).st_ino == os.fstat(published.fileno()).st_ino:
            (home / STATE_FILE).unlink()


def keep(home: Path, idle: float, timeout: float) -> None:
    """Run the server until no stage has held a lease for ``idle`` seconds, a stop is requested,
    the server exits, or it has not answered ``timeout`` seconds after its start."""
    port = _free_port()
    state = {"url": f"http://127.0.0.1:{port}/api", "since": time.time()}
    published = _publish(home, state)
    env = {
        **os.environ,
        # what Prefect sets for its own temporary server: no UI, ephemeral-mode settings
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        cwd=home,
    )
    stop = False

    def on_signal(signum, frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    answered = False
    last_used = time.monotonic()
    while not stop and server.poll() is None:
        time.sleep(POLL_SECONDS)
        if not answered:
            answered = healthy(state["url"], timeout=1.0)
            if not answered and time.time() > state["since"] + timeout:
                print(f"the server did not answer within {timeout:g} s; stopping", flush=True)
                stop = True
        with _locked(home):
            if (home / STOP_FILE).exists():
                (home / STOP_FILE).unlink(missing_ok=True)
                stop = True
            elif _held(home / LEASE_FILE, exclusive=True):
                last_used = time.monotonic()
            elif time.monotonic() - last_used > idle:
                stop = True
            if stop or server.poll() is not None:
                _unpublish(home, published)
    with _locked(home):
        _unpublish(home, published)
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
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_SECONDS)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    keep(args.home, args.idle, args.timeout)
