"""The registries of names: lazily named implementations that resolve, and validation of
params.yaml that imports none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seqmia.attacks.architectures import ATTACKS
from seqmia.attacks.seqmia.metric_registry import METRICS
from seqmia.base.lazy import Lazy
from seqmia.data.registry import DATASETS
from seqmia.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]

# Each registry's implementations live in the one module that calls them, so a stage that uses
# an entry imports that module statically (and dvc.yaml lists it as a dependency).
LAZY_ENTRIES = {
    "seqmia.models.architectures": [spec.build for spec in MODELS.values()],
    "seqmia.attacks.seqmia.metrics": list(METRICS.values()),
    "seqmia.attacks.networks": list(ATTACKS.values()),
    "seqmia.data.sources": [spec.read for spec in DATASETS.values()],
}


@pytest.mark.parametrize("module", sorted(LAZY_ENTRIES))
def test_every_registry_entry_names_a_function_of_the_module_that_calls_it(module):
    for entry in LAZY_ENTRIES[module]:
        assert entry.target.partition(":")[0] == module
        assert callable(entry.load()), entry.target


def test_lazy_binds_keywords_and_imports_on_first_call():
    join = Lazy("os.path:join")
    assert join("a", "b") == str(Path("a") / "b")
    dumps = Lazy("json:dumps", sort_keys=True)
    assert dumps({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert Lazy("json:dumps", indent=1, sort_keys=True) == Lazy(
        "json:dumps", sort_keys=True, indent=1
    )


@pytest.mark.parametrize("target", ["json", "json:", ":dumps", ""])
def test_lazy_refuses_a_target_without_module_and_attribute(target):
    with pytest.raises(ValueError, match="module:attribute"):
        Lazy(target)


def test_validating_params_imports_neither_torch_nor_pandas_nor_numpy():
    code = (
        "import sys\nfrom seqmia.params.schema import validate_file\n"
        "validate_file(sys.argv[1])\n"
        "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "params.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("stage", ["prepare", "partition"])
def test_the_stages_without_model_work_never_import_torch(stage):
    code = (
        f"import sys\nimport flows.{stage}\nfrom seqmia.params.schema import validate_file\n"
        "validate_file(sys.argv[1])\nprint('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "params.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
