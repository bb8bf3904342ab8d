"""The core library takes every path from its caller: it never opens params.yaml or a fixed path.

Which layer imports which (flows > tasks > seqmia; no Prefect, DVC, tasks or flows in the core) is
checked by ``lint-imports`` with the contracts in pyproject.toml. What an import contract cannot
see is checked here on the core's syntax tree: a literal file path handed to a call (``open``,
``Path``, ``yaml`` readers, ...) or used as a parameter default, and calls that resolve the
working or home directory.
"""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import REPO

CORE = REPO / "seqmia"

# A literal that names a path: no spaces and no URL scheme, and either a folder part ("data/raw",
# "/tmp/x") or one of the pipeline's own configuration files. A bare file name is a name inside a
# folder the caller gives (a publisher's archive name), not a path.
_PIPELINE_FILES = re.compile(r"^(params|dvc)\.(yaml|lock)$|^prefect\.yaml$")
_DIRECTORY_CALLS = {"cwd", "getcwd", "home", "expanduser"}

# Known exceptions, each with its reason; a new one needs the same scrutiny.
ALLOWED = {
    # The documented fallback of $SEQMIA_DATA_ROOT (README: install), read by prepare's task.
    ("seqmia/data/readers.py", "data/raw"),
}


def _path_like(value: object) -> bool:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    if "://" in value or value.startswith("."):
        return False
    return "/" in value or bool(_PIPELINE_FILES.match(value))


def _fixed_path_value(node: ast.expr) -> bool:
    """A path literal, or ``Path(...)`` of a literal (``Path("presets")``)."""
    if isinstance(node, ast.Constant):
        return _path_like(node.value)
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"Path", "PurePath"}:
        return any(isinstance(a, ast.Constant) for a in node.args)
    return False


def fixed_paths(source: str) -> list[tuple[int, str]]:
    """(line, what) for every literal path passed to a call or used as a parameter default, every
    parameter defaulting to a module constant that holds a path, and every call that asks for the
    working or home directory, in ``source``."""
    tree = ast.parse(source)
    path_constants = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and node.value is not None
        and _fixed_path_value(node.value)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        literals: list[ast.expr] = []
        if isinstance(node, ast.Call):
            literals += [*node.args, *(k.value for k in node.keywords)]
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _DIRECTORY_CALLS:
                found.append((node.lineno, f"{name}()"))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            defaults = [d for d in (*node.args.defaults, *node.args.kw_defaults) if d]
            literals += defaults
            found += [
                (d.lineno, d.id)
                for d in defaults
                if isinstance(d, ast.Name) and d.id in path_constants
            ]
        for literal in literals:
            if isinstance(literal, ast.Constant) and _path_like(literal.value):
                found.append((literal.lineno, literal.value))
    return found


def core_files() -> list[str]:
    return sorted(p.relative_to(REPO).as_posix() for p in CORE.rglob("*.py"))


@pytest.mark.parametrize(
    "source",
    [
        'def load_params(path="params.yaml"):\n    return open(path).read()\n',
        'import yaml\nyaml.safe_load(open("params.yaml"))\n',
        'from pathlib import Path\nROOT = Path("data/prepared")\n',
        'def f(*, root="/srv/data"):\n    return root\n',
        'from pathlib import Path\nDIR = Path("presets")\ndef f(folder=DIR):\n    return folder\n',
        "import os\nhere = os.getcwd()\n",
        "from pathlib import Path\nhere = Path.cwd() / 'x'\n",
    ],
)
def test_a_fixed_path_is_found(source: str) -> None:
    assert fixed_paths(source)


def test_paths_from_the_caller_and_messages_pass() -> None:
    source = (
        "from pathlib import Path\n"
        "def load(path: Path, root: Path):\n"
        '    """Reads params.yaml from ``path``."""\n'
        '    if not path.name.endswith(".yaml"):\n'
        '        raise ValueError("see params.yaml or data/raw for the keys")\n'
        '    return root / "data" / "prepared" / f"{path.stem}.npz"\n'
        'URL = str("https://example.org/a/b.tgz")\n'
        'TARGET = "target"\n'
        "def given(root: Path, name: str = TARGET):\n"
        "    return root / name\n"
    )
    assert fixed_paths(source) == []


@pytest.mark.parametrize("path", core_files())
def test_core_takes_every_path_from_its_caller(path: str) -> None:
    found = [
        (line, what)
        for line, what in fixed_paths((REPO / path).read_text())
        if (path, what) not in ALLOWED
    ]
    assert not found, f"{path}: fixed paths {found}; take them as arguments from the caller"


def test_every_core_sub_package_is_in_the_layers_contract_and_the_readme_tree():
    """A sub-package missing from the contract's layers would escape its import check, and the
    README's tree is the one place a newcomer reads the core's shape."""
    import tomllib

    packages = {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    loose = {p.name for p in CORE.glob("*.py")} - {"__init__.py"}
    assert not loose, f"modules outside a sub-package: {sorted(loose)}"
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = [c for c in contracts["contracts"] if c.get("containers") == ["seqmia"]]
    assert len(layered) == 1 and set(layered[0]["layers"]) == packages
    readme = (REPO / "README.md").read_text()
    tree = readme[readme.index("\nseqmia/\n") :].split("```")[0]
    listed = set(re.findall(r"^  (\w+)/ ", tree, flags=re.MULTILINE))
    assert listed == packages, f"README tree {sorted(listed)} against {sorted(packages)}"
