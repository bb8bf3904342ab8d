"""The experiment flow's helpers (overrides parsed like ``dvc exp run -S`` and written in place,
the params diff) and the comparison command's table and page."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.compare import Experiment, html_page, table_rows, text_table
from flows.experiment import metrics_table, params_diff, workspace_at, write_overrides
from seqmia.params.presets import apply_overrides, parse_overrides
from seqmia.params.schema import ParamsError
from tests.conftest import REPO


def test_write_overrides_sets_dotted_keys_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    write_overrides(path, {"attack.epochs": 7, "sequences.metrics": ["loss", "max"], "seed": 3})
    text = path.read_text()
    params = yaml.safe_load(text)
    assert params["attack"]["epochs"] == 7 and params["seed"] == 3
    assert params["sequences"]["metrics"] == ["loss", "max"]
    assert "# One source of configuration." in text  # comments survive
    original = yaml.safe_load((REPO / "params.yaml").read_text())
    params["attack"]["epochs"], params["seed"] = original["attack"]["epochs"], original["seed"]
    params["sequences"]["metrics"] = original["sequences"]["metrics"]
    assert params == original  # nothing else moved
    before = (REPO / "params.yaml").read_text().splitlines()
    changed = [new for old, new in zip(before, text.splitlines(), strict=True) if old != new]
    assert len(changed) == 3  # one line per override, formatting and comments kept
    assert changed[-1].strip() == "epochs: 7"


def test_write_overrides_without_overrides_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("a: 1   # keep 'this' formatting\n")
    write_overrides(path, {})
    assert path.read_text() == "a: 1   # keep 'this' formatting\n"


def test_metrics_table_sorts_attacks_by_auc() -> None:
    metrics = {
        "attacks": {
            "loss": {"auc": 0.7, "tpr_at_fpr": {"0.01": 0.02}},
            "seqmia": {"auc": 0.9, "tpr_at_fpr": {"0.01": 0.3}},
        }
    }
    rows = metrics_table(metrics)
    assert [r["attack"] for r in rows] == ["seqmia", "loss"]
    assert rows[0]["tpr@0.01"] == 0.3


def test_overrides_parse_as_yaml_1_2_like_dvc_exp_run() -> None:
    parsed = parse_overrides(
        ["attack.lr=5e-3", "attack.epochs=4", "sequences.metrics=[loss, max]", "data.path=yes"]
    )
    assert parsed == {
        "attack.lr": 0.005,
        "attack.epochs": 4,
        "sequences.metrics": ["loss", "max"],
        "data.path": "yes",  # YAML 1.2: a string, not a boolean
    }
    assert isinstance(parsed["attack.lr"], float)
    with pytest.raises(ParamsError, match="KEY=VALUE"):
        parse_overrides(["attack.lr"])


def test_unknown_override_key_lists_the_keys_of_its_section() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    with pytest.raises(ParamsError) as err:
        apply_overrides(raw, {"attack.epoch": 3})
    message = str(err.value)
    assert "'attack.epoch'" in message and "section 'attack'" in message
    assert "epochs" in message and "hidden_size" in message and "min_lr" in message
    with pytest.raises(ParamsError, match="sections: .*'attack'"):
        apply_overrides(raw, {"atack.epochs": 3})


def test_params_diff_names_every_changed_key_and_only_those() -> None:
    base = {"seed": 0, "attack": {"epochs": 4, "lr": 0.01}, "sequences": {"metrics": ["loss"]}}
    run = {"seed": 0, "attack": {"epochs": 4, "lr": 0.005}, "sequences": {"metrics": ["max"]}}
    assert params_diff(base, run) == {
        "attack.lr": {"base": 0.01, "run": 0.005},
        "sequences.metrics": {"base": ["loss"], "run": ["max"]},
    }
    assert params_diff(base, base) == {}


def _experiment(name: str, auc: float) -> Experiment:
    report = {
        "auc": auc,
        "n_nonmembers": 2000,
        "tpr_at_fpr": {"0.001": 0.01, "0.01": 0.05},
        "ci95": {"auc": [auc - 0.02, auc + 0.02], "tpr_at_fpr": {"0.001": [0.0, 0.02]}},
    }
    attacks = {
        "seqmia": report,
        "seqmia_mlp": {"auc": 0.99},
        "loss": {"auc": 0.6},
        "trajectory_mia": {"auc": 0.7},
    }
    roc = pd.DataFrame({"fpr": [0.0, 0.001, 0.5, 1.0], "tpr": [0.0, 0.01, 0.8, 1.0]})
    return Experiment(
        name,
        "c" * 40,
        "b" * 40,
        {"attack.lr": 0.005},
        {"attacks": attacks},
        roc,
        {"seqmia": 12, "trajectory_mia": 80},
    )


def test_comparison_table_and_page_are_compact_and_offline() -> None:
    experiments = [_experiment("exp-a", 0.8), _experiment("exp-b", 0.7)]
    rows = table_rows(experiments)
    assert rows[0] == {
        "experiment": "exp-a",
        "base": "bbbbbbb",
        "overrides": "attack.lr=0.005",
        "SeqMIA AUC": "0.800 [0.780, 0.820]",
        "TPR@0.10% FPR": "0.010 [0.000, 0.020]",
        "TPR@1.00% FPR": "0.050",
        "SeqMIA epoch": "12",
        "best baseline (AUC)": "trajectory_mia 0.700, epoch 80",
    }
    text = text_table(rows)
    assert len(text.splitlines()) == 4 and "exp-b" in text
    page = html_page(experiments, rows)
    assert page.count("<polyline") == 2 * (1 + len(experiments))  # diagonal + one per experiment
    # The same curve twice stays visible: the first is drawn wider, the second dashed.
    curves = [line for line in page.split("<polyline")[1:] if "<title>" in line]
    assert 'stroke-width="1.8"' in curves[0] and "stroke-dasharray" not in curves[0]
    assert 'stroke-width="1.0" stroke-dasharray="7 4"' in curves[1]
    assert ">1e-4<" in page and ">1e-5<" not in page  # 2,000 non-members resolve 5e-4
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_stopping_a_stage_waits_for_its_whole_process_group() -> None:
    # The leader (as `dvc`) dies at SIGTERM; a child in its group ignores SIGTERM (as a stage
    # whose task threads keep running): it must be gone too before the workspace is removed.
    import subprocess
    import time

    from flows.experiment import group_members, stop_group

    proc = subprocess.Popen(
        ["bash", "-c", "(trap '' TERM; sleep 60) & sleep 60"], start_new_session=True
    )
    deadline = time.monotonic() + 10
    while len(group_members(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(proc.pid)) >= 2
    stop_group(proc, grace=0.5)
    assert group_members(proc.pid) == []
    assert proc.returncode is not None


def test_a_reaped_process_group_is_never_signalled() -> None:
    # Once the leader is reaped its pid, the group's id, may be given to another process.
    import subprocess

    import pytest

    from flows.experiment import leader_running, stop_group

    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    assert not leader_running(proc)
    with pytest.raises(RuntimeError, match="already reaped"):
        stop_group(proc, grace=0.1)


def test_leader_running_does_not_reap_the_leader() -> None:
    import os
    import subprocess
    import time

    from flows.experiment import leader_running

    proc = subprocess.Popen(["true"], start_new_session=True)
    deadline = time.monotonic() + 10
    while leader_running(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leader_running(proc) and proc.returncode is None  # exited, still unreaped
    assert os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    assert proc.wait() == 0


def test_a_workspace_uses_the_remotes_however_they_were_added(tmp_path: Path) -> None:
    """``dvc remote add -d`` without a commit (the per-host step of docs/experiments.md), a
    ``--local`` remote and a committed one with a relative path all reach the workspace, which is
    checked out at a commit that has only the committed one."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str, cwd: Path = repo) -> str:
        return subprocess.run(
            args, cwd=cwd, env=env, check=True, capture_output=True, text=True
        ).stdout

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "remote", "add", "committed", "../committed-store")
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    run("dvc", "remote", "add", "-d", "shared", str(tmp_path / "shared-store"))
    run("dvc", "remote", "modify", "shared", "jobs", "3")
    run("dvc", "remote", "add", "--local", "mine", str(tmp_path / "my-store"))
    with workspace_at(repo, "HEAD", "remotes") as workspace:
        listed = run("dvc", "remote", "list", cwd=workspace).split()
        assert listed[listed.index("committed") + 1] == str(tmp_path / "committed-store")
        assert listed[listed.index("shared") + 1] == str(tmp_path / "shared-store")
        assert listed[listed.index("mine") + 1] == str(tmp_path / "my-store")
        assert run("dvc", "remote", "default", cwd=workspace).strip() == "shared"
        assert run("dvc", "config", "remote.shared.jobs", cwd=workspace).strip() == "3"
        assert run("dvc", "config", "core.autostage", cwd=workspace).strip() == "true"
    assert run("git", "status", "--porcelain") == " M .dvc/config\n"  # the repo as it was
