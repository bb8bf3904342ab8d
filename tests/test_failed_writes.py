"""Writes that fail for real (a file size limit, a directory in the way) end in one line naming the
file, the cause and the free space, and leave the previous file and no temporary file behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqmia.base.artifacts import WriteError, atomic_path, human_bytes, write_json
from seqmia.base.errors import UserError
from tests.conftest import REPO

LIMIT = 64 * 1024  # RLIMIT_FSIZE of the writing subprocess: every payload below is larger

# Builds a payload over LIMIT bytes, then lowers the process's file size limit (ignoring SIGXFSZ,
# whose default action kills the process, so that write(2) fails with EFBIG instead: the same
# error path as a full disk's ENOSPC) and writes it over an existing file. Prints the error.
WRITE_SCRIPT = """
import resource, signal, sys
from pathlib import Path
import numpy as np
import pandas as pd
from seqmia.base import artifacts
from seqmia.base.errors import UserError

writer, dest, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
values = np.random.default_rng(0).random(100_000)
if writer == "save_state_dict":
    import torch
    payload = (torch.nn.Linear(200, 200),)
elif writer == "write_npz":
    payload = ()
elif writer == "write_parquet":
    payload = (pd.DataFrame({"score": values}),)
else:
    payload = (values.tolist(),)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    if writer == "write_npz":
        artifacts.write_npz(dest, values=values)
    else:
        getattr(artifacts, writer)(dest, *payload)
except UserError as err:
    cause = err.__cause__
    print(type(err).__name__, isinstance(err, OSError), err.errno, type(cause).__name__)
    print(err)
    sys.exit(3)
print("written")
"""


def run_limited_write(writer: str, dest: Path) -> subprocess.CompletedProcess[str]:
    """Run ``seqmia.base.artifacts.<writer>`` onto ``dest`` in a subprocess limited to
    ``LIMIT``-byte files."""
    return subprocess.run(
        [sys.executable, "-c", WRITE_SCRIPT, writer, str(dest), str(LIMIT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def leftovers(dest: Path) -> list[Path]:
    """Temporary files of ``atomic_path`` left beside ``dest``."""
    return sorted(dest.parent.glob(f".{dest.name}.*.tmp"))


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        ("save_state_dict", "target.pt"),
        ("write_npz", "dataset.npz"),
        ("write_parquet", "scores.parquet"),
        ("write_json", "metrics.json"),
    ],
)
def test_a_write_over_the_file_size_limit_fails_in_one_line(
    tmp_path: Path, writer: str, name: str
) -> None:
    dest = tmp_path / "out" / name
    dest.parent.mkdir()
    previous = b"the previous version of this file\n" * 50
    dest.write_bytes(previous)
    result = run_limited_write(writer, dest)
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    kind, message = result.stdout.splitlines()
    assert kind == f"WriteError True {errno.EFBIG} OSError"  # chained from the kernel's error
    assert message.startswith(f"cannot write {dest}: File too large (while writing it; "), message
    assert " free on its file system); " in message and f"previous {name} is unchanged" in message
    assert dest.read_bytes() == previous
    assert leftovers(dest) == []


def test_a_failed_first_write_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    result = run_limited_write("save_state_dict", dest)
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    assert "nothing was written; the file exceeds a size limit" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_names_the_file_and_keeps_what_is_there(tmp_path: Path) -> None:
    dest = tmp_path / "metrics.json"
    (dest / "inside").mkdir(parents=True)  # a folder in the way: os.replace cannot replace it
    with pytest.raises(WriteError) as info:
        write_json(dest, {"auc": 0.5})
    text = str(info.value)
    assert isinstance(info.value, UserError) and isinstance(info.value.__cause__, OSError)
    assert "\n" not in text
    assert text.startswith(f"cannot write {dest}: {os.strerror(info.value.errno)} (while moving")
    assert (dest / "inside").is_dir() and leftovers(dest) == []


def test_an_error_about_another_file_in_the_block_passes_unchanged(tmp_path: Path) -> None:
    dest = tmp_path / "report.html"
    with pytest.raises(FileNotFoundError) as info:
        with atomic_path(dest) as tmp:
            tmp.write_bytes((tmp_path / "missing.png").read_bytes())
    assert not isinstance(info.value, WriteError)
    assert list(tmp_path.iterdir()) == []


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1288490189, 5 * 2**50)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.2 GiB",
        "5120.0 TiB",
    ]
