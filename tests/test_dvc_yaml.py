"""dvc.yaml declares exactly what each stage runs: its code deps are the modules its flow imports,
and its params are keys that exist in params.yaml."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, STAGES

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())

# Prints the project files (relative paths) that importing one flow module loads.
CLOSURE = """
import os, sys
root = os.getcwd()
sys.path.insert(0, root)
__import__(sys.argv[1])
for module in list(sys.modules.values()):
    path = os.path.abspath(getattr(module, "__file__", None) or os.devnull)
    if path.startswith(root + os.sep) and ".venv" not in path and os.path.exists(path):
        print(os.path.relpath(path, root))
"""


def test_stages_are_the_pipeline_in_order() -> None:
    assert STAGES == (
        "prepare", "partition", "train", "reference", "distill", "sequences", "attack",
        "baselines", "evaluate",
    )  # fmt: skip
    for name, stage in DVC["stages"].items():
        assert stage["cmd"] == f"python -m flows.{name}"


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_exactly_the_imported_modules(stage: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CLOSURE, f"flows.{stage}"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    imported = sorted(set(out.stdout.split()))
    declared = sorted(d for d in DVC["stages"][stage]["deps"] if d.endswith(".py"))
    assert declared == imported


@pytest.mark.parametrize("stage", STAGES)
def test_params_name_existing_keys(stage: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in DVC["stages"][stage]["params"]:
        node = params
        for part in key.split("."):
            assert part in node, f"{stage} declares unknown param {key}"
            node = node[part]
