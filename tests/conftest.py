"""Shared fixtures: a real Prefect server on 127.0.0.1 and a small real image dataset on disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# The pipeline's stages in dvc.yaml's order: the one list every test uses.
STAGES: tuple[str, ...] = tuple(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Unit tests use tiny tensors: one intra-op thread is much faster than two, above all on a
    busy machine (stage subprocesses choose their own thread counts)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_stop_left_over():
    """A test that stops a loop (a failing sibling, a stop request) leaves the process-wide stop
    of seqmia.base.stopping set, as a stage would until it exits: clear it for the next test."""
    from seqmia.base.stopping import clear_stop

    clear_stop()
    yield
    clear_stop()


def stop_process_group(proc: subprocess.Popen, grace_seconds: float = 30) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it spawned, by its
    process-group id: SIGTERM, then SIGKILL if it has not exited within ``grace_seconds``."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for subprocesses that run flows against a real Prefect server.

    Uses the server named by ``PREFECT_API_URL`` when one is set and answers (``.ci/run`` starts
    one); otherwise starts ``prefect server start`` on a free loopback port for the session and
    stops it by its process id afterwards.
    """
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect_home")))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["DVC_NO_ANALYTICS"] = "1"
    api_url = env.get("PREFECT_API_URL", "")
    if api_url and _healthy(api_url):
        yield env
        return
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = open(tmp_path_factory.mktemp("prefect_log") / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start; see {log.name}")
            time.sleep(0.5)
        env["PREFECT_API_URL"] = api_url
        yield env
    finally:
        stop_process_group(server)
        log.close()


def write_digits_image_folder(root: Path) -> Path:
    """scikit-learn's bundled 8x8 digits (1,797 real scans) as PNGs in ImageFolder layout.

    ``root/digits/{train,test}/<digit>/NNNN.png``; about 2/3 of each class in train/.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # (N, 8, 8)
    folder = root / "digits"
    for label in range(10):
        ids = np.flatnonzero(digits.target == label)
        cut = (2 * len(ids)) // 3
        for split, chunk in (("train", ids[:cut]), ("test", ids[cut:])):
            out = folder / split / str(label)
            out.mkdir(parents=True, exist_ok=True)
            for i in chunk:
                Image.fromarray(images[i], mode="L").save(out / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding ``digits/`` (ImageFolder layout) built from real scans."""
    root = tmp_path_factory.mktemp("data_root")
    write_digits_image_folder(root)
    return root
