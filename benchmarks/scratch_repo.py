"""A fresh git + DVC repository holding the project's code: where the benchmark and the
end-to-end tests run the real pipeline without touching this checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = ("flows", "tasks", "seqmia", "target", "dvc.yaml")


def make_scratch_repo(path: Path, params_yaml: str, cache_dir: Path | None = None) -> Path:
    """Copy the code into ``path`` (replacing what is there) with ``params_yaml`` as params.yaml,
    commit it, and optionally point DVC at an existing cache (``cache_dir``). Returns ``path``."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    for name in CODE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, path / name)
    (path / "params.yaml").write_text(params_yaml)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "scratch@example.com"],
        ["git", "config", "user.name", "scratch"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "scratch copy"],
    ):
        subprocess.run(cmd, cwd=path, check=True, capture_output=True)
    if cache_dir is not None:
        subprocess.run(["dvc", "cache", "dir", str(cache_dir)], cwd=path, check=True)
    return path
