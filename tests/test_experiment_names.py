"""An experiment's name and base revision are checked before any stage runs (flows/experiment.py).

A name is checked with the rules of ``dvc exp save --name`` (git's check-ref-format on
refs/exps/<baseline>/<name>, and no "/"), plus no leading "-" and a length bound, by
``python -m flows.experiment`` before Prefect starts and again at the start of the flow. A
revision never starts with "-", and every git command passes it after ``--end-of-options``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dulwich.refs import Ref
from dulwich.refs import check_ref_format as git_ref_format_ok
from dvc.exceptions import InvalidArgumentError
from dvc.repo.experiments.refs import ExpRefInfo
from dvc.repo.experiments.utils import check_ref_format as dvc_check_ref_format

from flows.experiment import MAX_NAME_BYTES, check_experiment_name, check_rev, show_params
from seqmia.base.errors import UserError
from tests.conftest import REPO

GOOD_NAMES = [
    "short-attack",
    "seed_3",
    "cifar10-paper-20240101-120000",
    "v1.0",
    "a.b",
    "x@y",
    "a{b}",
    "@",
    "Ärger-ü",
    "UPPER",
    "a-",
    "n" * MAX_NAME_BYTES,
]
# name -> what the one-line refusal says
BAD_NAMES = {
    "bad name": "must not contain a space",
    "a..b": "must not contain '..'",
    "-x": "must not start with '-'",
    "a/b": "must not contain '/'",
    "x.lock": "must not end with '.lock'",
    "@{": "must not contain '@{'",
    "x@{1}": "must not contain '@{'",
    ".hidden": "must not start with '.'",
    "ends.": "must not end with '.'",
    "a:b": "must not contain a space or any of",
    "a~1": "must not contain a space or any of",
    "a^b": "must not contain a space or any of",
    "a?b": "must not contain a space or any of",
    "a*b": "must not contain a space or any of",
    "a[b": "must not contain a space or any of",
    "a\\b": "must not contain a space or any of",
    "tab\tname": "must not contain control characters",
    "del\x7f": "must not contain control characters",
    "": "must not be empty",
    "n" * (MAX_NAME_BYTES + 1): f"must be at most {MAX_NAME_BYTES} bytes",
}
BASELINE = "ab" * 20  # any commit id: DVC checks refs/exps/ab/abab…/<name>


class _DulwichScm:
    """The one method DVC's name check calls on its git backend (scmrepo's dulwich backend)."""

    @staticmethod
    def check_ref_format(refname: str) -> bool:
        return git_ref_format_ok(Ref(refname.encode()))


def dvc_accepts(name: str) -> bool:
    """Whether ``dvc exp save --name NAME`` accepts the name (DVC's own check)."""
    try:
        dvc_check_ref_format(_DulwichScm(), ExpRefInfo(baseline_sha=BASELINE, name=name))
    except InvalidArgumentError:
        return False
    return True


def accepts(name: str) -> bool:
    try:
        check_experiment_name(name)
    except UserError:
        return False
    return True


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names_pass_the_check(name: str) -> None:
    check_experiment_name(name)
    assert dvc_accepts(name)


@pytest.mark.parametrize(("name", "rule"), BAD_NAMES.items(), ids=repr)
def test_bad_names_refused_naming_the_rule(name: str, rule: str) -> None:
    with pytest.raises(UserError) as err:
        check_experiment_name(name)
    message = str(err.value)
    assert message.startswith("experiment name ") and rule in message
    assert "\n" not in message and len(message) < 300


def test_the_check_is_dvc_exp_saves_plus_a_leading_dash_and_a_length_bound() -> None:
    names = [*GOOD_NAMES, *BAD_NAMES]
    names += [
        f"{a}{c}{b}"
        for c in " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\x00\x1f\x7f"
        for a, b in (("", "x"), ("x", ""), ("x", "y"))
    ]
    for name in names:
        # DVC takes "" for no name (it makes one up); the flow refuses it rather than guess
        ours_only = not name or name.startswith("-") or len(name.encode()) > MAX_NAME_BYTES
        assert accepts(name) == (dvc_accepts(name) and not ours_only), repr(name)


def test_revisions_that_git_could_read_as_options_refused() -> None:
    for rev in ("--output=FILE", "-p", ""):
        with pytest.raises(UserError, match="--rev") as err:
            check_rev(rev)
        assert "\n" not in str(err.value)
    for rev in ("HEAD", "HEAD~1", "v1.0", "main@{1}", "HEAD^{commit}", "abc123"):
        check_rev(rev)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository of one commit holding the repository's params.yaml: somewhere a run that
    got past the checks could do no harm."""
    repo = tmp_path_factory.mktemp("names") / "repo"
    repo.mkdir()
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    commit = ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base"]
    for args in (["init", "-q"], ["add", "params.yaml"], commit):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def run_experiment(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m flows.experiment ARGS`` in ``repo``. No Prefect server answers at the API
    address, so a run that got past the checks would fail instead of running stages."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    return subprocess.run(
        [sys.executable, "-m", "flows.experiment", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def files_and_worktrees(repo: Path) -> tuple[list[str], str]:
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if ".git" not in p.parts)
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return files, worktrees


@pytest.mark.parametrize("name", ["bad name", "a..b", "-x", "a/b", "x.lock", "@{", ".x", "a:b"])
def test_bad_name_refused_by_the_command_before_any_stage(tiny_repo: Path, name: str) -> None:
    before = files_and_worktrees(tiny_repo)
    result = run_experiment(tiny_repo, f"--name={name}", "-S", "seed=3")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: experiment name ")
    assert BAD_NAMES.get(name, "must not") in result.stderr
    assert files_and_worktrees(tiny_repo) == before  # no workspace, nothing written


def test_rev_that_looks_like_an_option_refused_and_writes_nothing(tiny_repo: Path) -> None:
    out = tiny_repo.parent / "FILE"
    result = run_experiment(tiny_repo, f"--rev=--output={out}", "--name", "fine")
    assert result.returncode == 2, result.stderr[-2000:]
    refusal = f"error: --rev '--output={out}' must not start with '-' (a revision never does)"
    assert result.stderr == refusal + "\n"
    assert not list(tiny_repo.parent.glob("FILE*"))


def test_git_never_reads_a_revision_as_an_option(tiny_repo: Path) -> None:
    # Even past check_rev: git show gets the revision after --end-of-options.
    out = tiny_repo.parent / "OUT"
    with pytest.raises(UserError, match="no params.yaml at that revision"):
        show_params(f"--output={out}", tiny_repo)
    assert not list(tiny_repo.parent.glob("OUT*"))
    assert show_params("HEAD", tiny_repo)["seed"] == show_params("HEAD", REPO)["seed"]
