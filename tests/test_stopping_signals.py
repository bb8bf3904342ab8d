"""A stage told to stop (SIGTERM, as a cancelled run or a stopped worker sends; Ctrl-C, which the
terminal sends to dvc's whole process group) stops its tasks at their next batch, writes nothing
after the signal, exits with the signal's code, and the next ``dvc repro`` recovers.

Each test signals only processes it started: the stage process it launched, or the process
group of the ``dvc repro`` it launched in a session of its own."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline import make_repo, repro, tiny_params

pytestmark = pytest.mark.slow

EPOCHS = 400  # long enough that an unstopped stage would still be training a minute later


@pytest.fixture
def partitioned_repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """A tiny repository whose train stage trains for ``EPOCHS`` epochs, prepared and
    partitioned."""
    params = tiny_params()
    params["train"]["epochs"] = EPOCHS
    repo = make_repo(tmp_path / "repo", params)
    repro(repo, env, "partition")
    return repo


@pytest.fixture(scope="module")
def env(prefect_env: dict[str, str], digits_root: Path) -> dict[str, str]:
    return {
        **prefect_env,
        "SEQMIA_DATA_ROOT": str(digits_root),
        "PYTHONPATH": "",
        "PYTHONUNBUFFERED": "1",
    }


def _start_and_wait_for(
    cmd: list[str], repo: Path, env: dict[str, str], log: Path, line: str, timeout: float = 300
) -> subprocess.Popen:
    """Start ``cmd`` in a session of its own, output to ``log``; return once ``line`` is in it."""
    # A child inherits an ignored SIGINT (and Python then installs no Ctrl-C handler in it); the
    # Ctrl-C test passed alone but, twice in full-suite runs, its stage trained on through the
    # signal. Start the command with Python's own handler in place, whatever earlier in-process
    # code left, and say what that was if the test fails.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen(
                cmd, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    finally:
        signal.signal(signal.SIGINT, inherited)
    proc.inherited_sigint = inherited  # type: ignore[attr-defined]  # for the failure message
    deadline = time.monotonic() + timeout
    while line not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{line!r} never came; output:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def _models(repo: Path) -> dict[str, str]:
    folder = repo / "data" / "models"
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _wait(proc: subprocess.Popen, seconds: float) -> int:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started
        proc.wait()
        raise AssertionError(f"still running {seconds:g} s after the signal") from None


def test_sigterm_stops_the_train_stage_and_dvc_repro_recovers(
    partitioned_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    repo = partitioned_repo
    log = tmp_path / "train.log"
    proc = _start_and_wait_for(
        [sys.executable, "-m", "flows.train"], repo, env, log, f"train epoch 2/{EPOCHS}"
    )
    signalled = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)  # the stage process this test started
    code = _wait(proc, 60)
    stopped_after = time.monotonic() - signalled
    output = log.read_text()
    assert code == -signal.SIGTERM, output[-3000:]
    assert stopped_after < 30, output[-3000:]
    assert f"train epoch {EPOCHS}/{EPOCHS}" not in output
    assert _models(repo) == {}, "a stopped stage wrote models"
    assert not list(repo.rglob(".*.tmp")), "a stopped stage left temporary files"

    # The next dvc repro trains from the start and gives what an uninterrupted run gives.
    repro(repo, env, "train")
    recovered = _models(repo)
    assert {"target.pt", "shadow.pt", "target.json", "shadow.json"} <= set(recovered)
    repro(repo, env, "-f", "--single-item", "train")  # uninterrupted, from scratch
    assert _models(repo) == recovered


def test_ctrl_c_on_dvc_repro_stops_the_stage_without_writing(
    partitioned_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    repo = partitioned_repo
    log = tmp_path / "repro.log"
    proc = _start_and_wait_for(["dvc", "repro", "train"], repo, env, log, f"train epoch 2/{EPOCHS}")
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the group this test started
    code = _wait(proc, 60)
    output = log.read_text()
    assert code != 0, f"SIGINT was {proc.inherited_sigint} in the test process\n{output[-3000:]}"
    assert f"train epoch {EPOCHS}/{EPOCHS}" not in output
    assert _models(repo) == {}, "a stopped stage wrote models"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert "train" not in lock["stages"]
