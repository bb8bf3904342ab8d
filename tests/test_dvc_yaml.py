"""dvc.yaml declares exactly what each stage runs: its code deps are the modules its flow imports,
and its params are keys that exist in params.yaml.

The imports come from a static import graph (grimp, as import-linter uses it), so an import inside
a function counts like one at the top of a module. Imports under ``if TYPE_CHECKING:`` do not
count (they never run), and neither does an import by name (``importlib``): the one such import,
whole-file params validation (seqmia.params.schema), decides whether a stage runs, never what it
writes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, STAGES

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())

# Prints, per flow module given, the project files that running it may import: every module the
# flow imports directly or indirectly, plus the packages (``__init__.py``) Python runs on the way.
CLOSURE = """
import os, sys
import grimp
root = os.getcwd()
sys.path.insert(0, root)
graph = grimp.build_graph("flows", "tasks", "seqmia", exclude_type_checking_imports=True,
                          cache_dir=None)
for flow in sys.argv[1:]:
    modules = {flow} | graph.find_upstream_modules(flow)
    todo = list(modules)
    while todo:  # importing a.b.c runs a/__init__.py and a/b/__init__.py, and what they import
        parts = todo.pop().split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package not in modules:
                new = {package} | graph.find_upstream_modules(package)
                todo += sorted(new - modules)
                modules |= new
    files = []
    for name in modules:
        base = os.path.join(root, *name.split("."))
        files.append(os.path.join(base, "__init__.py") if os.path.isdir(base) else base + ".py")
    print(flow, " ".join(sorted(os.path.relpath(f, root) for f in files)))
"""


def _closures() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", CLOSURE, *(f"flows.{stage}" for stage in STAGES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = (line.split(" ", 1) for line in out.stdout.splitlines())
    return {flow.removeprefix("flows."): files.split() for flow, files in lines}


@pytest.fixture(scope="module")
def closures() -> dict[str, list[str]]:
    return _closures()


def test_stages_are_the_pipeline_in_order() -> None:
    assert STAGES == (
        "prepare",
        "partition",
        "train",
        "reference",
        "distill",
        "sequences",
        "attack",
        "baselines",
        "quantile",
        "evaluate",
    )
    for name, stage in DVC["stages"].items():
        assert stage["cmd"] == f"python -m flows.{name}"


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_exactly_the_imported_modules(stage: str, closures) -> None:
    imported = closures[stage]
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


def test_the_roc_plot_shows_seqmia_and_one_attack_per_family_of_the_registry() -> None:
    from seqmia.audit.tables import family_heads

    (roc,) = [entry["ROC"] for entry in DVC["plots"] if "ROC" in entry]
    assert list(roc["y"]) == [f"eval/roc/{name}.csv" for name in family_heads()]
