"""The core library must not depend on the orchestration layers (Prefect, DVC)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import importlib, sys
sys.modules["prefect"] = None
sys.modules["dvc"] = None
for name in sys.argv[1:]:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "dvc")
                and sys.modules[m] is not None)
assert not leaked, leaked
print("imported", len(sys.argv) - 1)
"""


def core_modules() -> list[str]:
    return sorted(
        "seqmia" if p.stem == "__init__" else f"seqmia.{p.stem}"
        for p in (ROOT / "seqmia").glob("*.py")
    )


def test_core_modules_listed():
    modules = core_modules()
    assert "seqmia.metrics" in modules and "seqmia.attack" in modules
    assert len(modules) >= 12


def test_core_imports_without_prefect_or_dvc():
    modules = core_modules()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"imported {len(modules)}" in result.stdout


def test_blocking_works():
    # The check above is meaningful only if a blocked import really fails.
    result = subprocess.run(
        [sys.executable, "-c", 'import sys; sys.modules["prefect"] = None; import prefect'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr or "ImportError" in result.stderr
