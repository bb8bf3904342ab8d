"""End to end: real ``dvc repro`` of the real stages in a temporary git repository, with every
flow reporting to a real Prefect server, on a small real dataset (scikit-learn's digits scans)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks.scratch_repo import make_scratch_repo
from seqmia.attacks.registry import ATTACKS as REGISTRY
from seqmia.attacks.registry import reported
from tests.browser import browser_or_skip, measure_layout
from tests.conftest import REPO, STAGES

pytestmark = pytest.mark.slow

METRICS = tuple(yaml.safe_load((REPO / "params.yaml").read_text())["sequences"]["metrics"])
CHOSEN = yaml.safe_load((REPO / "params.yaml").read_text())["baselines"]["attacks"]
# What eval/metrics.json must hold, in order: every attack of the registry the run can report.
ATTACKS = list(reported(METRICS, CHOSEN))
# The attacks that train a model (so score in log-odds): fitted by the attack or baselines stage.
TRAINED = {
    result
    for name, attack in REGISTRY.items()
    if attack.fit_stage != "evaluate"
    for result in attack.results(name, METRICS)
}


def tiny_params() -> dict:
    """The repository's params.yaml shrunk to a few hundred digits and a few epochs."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["device"] = "cpu"
    params["data"].update(name="imagefolder", path="digits")
    params["partition"].update(
        unit="per_class", target_in=10, target_out=10, shadow_in=10, shadow_out=10, distill=20
    )
    params["train"].update(epochs=3, batch_size=20)
    params["reference"]["models"] = 2
    params["distill"]["epochs"] = 12  # long enough for the kill test to land mid-stage
    params["attack"].update(epochs=4, batch_size=20)
    for recipe in ("nn_posterior", "trajectory_mia", "seqmia_ablations"):
        params["baselines"][recipe].update(epochs=3, batch_size=20)
    params["evaluate"].update(fpr_targets=[0.01, 0.1], bootstrap=50)
    return params


def make_repo(path: Path, params: dict) -> Path:
    """A fresh git + DVC repository holding the project's code and ``params``."""
    return make_scratch_repo(path, yaml.safe_dump(params, sort_keys=False))


def repro(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``dvc repro`` in ``repo``; fails the test with its output if it fails."""
    result = subprocess.run(
        ["dvc", "repro", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def stages_run(output: str) -> list[str]:
    """Names of the stages that ``dvc repro`` output says it ran."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def env(prefect_env: dict[str, str], digits_root: Path) -> dict[str, str]:
    return {**prefect_env, "SEQMIA_DATA_ROOT": str(digits_root), "PYTHONPATH": ""}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]):
    """A repository after one complete ``dvc repro``, and that run's metrics."""
    repo = make_repo(tmp_path_factory.mktemp("clean") / "repo", tiny_params())
    # Every stage appends the params keys it reads (seqmia.params.schema) beside the repository.
    result = repro(repo, {**env, "SEQMIA_RECORD_PARAMS": str(repo.parent / "params_reads.txt")})
    # Later tests change this repository; the kill test compares its outputs with these.
    shutil.copy(repo / "dvc.lock", repo.parent / "clean_dvc.lock")
    return repo, result, json.loads((repo / "eval" / "metrics.json").read_text())


def leaf_differences(got: object, want: object, path: str = "") -> list[str]:
    """``path: got != want`` for every leaf where two JSON documents differ."""
    if isinstance(got, dict) and isinstance(want, dict):
        return [
            line
            for key in sorted(set(got) | set(want))
            for line in leaf_differences(got.get(key), want.get(key), f"{path}.{key}")
        ]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [
            line
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for line in leaf_differences(g, w, f"{path}[{i}]")
        ]
    return [] if got == want else [f"{path.lstrip('.')}: {got!r} != {want!r}"]


def output_hashes(lock_file: Path) -> dict[str, str]:
    """Each stage's output paths and their hashes in a ``dvc.lock``."""
    stages = yaml.safe_load(lock_file.read_text())["stages"]
    return {
        f"{name} {out['path']}": out.get("md5", "")
        for name, stage in stages.items()
        for out in stage.get("outs", [])
    }


def test_repro_runs_every_stage_and_writes_documented_artefacts(clean_run) -> None:
    repo, result, metrics = clean_run
    assert stages_run(result.stdout) == list(STAGES)

    partition = pd.read_parquet(repo / "data" / "partition.parquet")
    assert list(partition.columns) == ["sample_id", "label", "role"]
    assert partition["sample_id"].is_unique
    assert partition.groupby("role", observed=True).size().to_dict() == {
        "target_in": 100,
        "target_out": 100,
        "shadow_in": 100,
        "shadow_out": 100,
        "distill": 200,
    }

    for role in ("target", "shadow"):
        snaps = sorted((repo / "data" / "snapshots" / role).glob("epoch_*.pt"))
        assert [p.name for p in snaps] == [f"epoch_{e:03d}.pt" for e in range(1, 13)]
        seq = pd.read_parquet(repo / "data" / "sequences" / f"{role}.parquet")
        assert list(seq.columns) == [
            "sample_id",
            "part",
            "member",
            "label",
            "snapshot",
            "loss",
            "max",
            "sd",
            "entropy",
            "m_entropy",
        ]
        assert len(seq) == 200 * 13 and set(seq["snapshot"]) == set(range(1, 14))
        assert set(seq["part"]) == {f"{role}_in", f"{role}_out"}

    distill_ids = set(partition.loc[partition["role"] == "distill", "sample_id"])
    for index in (1, 2):  # LiRA's reference models: trained on shadow data only
        logits = pd.read_parquet(repo / "data" / "reference" / f"logits_{index}.parquet")
        assert len(logits) == 400 + 200
        assert set(logits["role"]) == {"target", "shadow", "population"}
        trained = logits[logits["in_training"]]
        assert (trained["role"] == "shadow").all() and len(trained) == 100
        population = logits[logits["role"] == "population"]
        assert set(population["sample_id"]) == distill_ids  # RMIA's z: the attacker's own data
        assert (repo / "data" / "reference" / f"model_{index}.pt").is_file()
    for role in ("target", "shadow"):  # the original models' answers on the population
        population = pd.read_parquet(repo / "data" / "final_logits" / f"{role}_population.parquet")
        assert set(population["sample_id"]) == distill_ids and len(population) == 200

    seqmia = metrics["attacks"]["seqmia"]
    assert list(metrics["attacks"]) == ATTACKS
    assert set(seqmia["tpr_at_fpr"]) == {"0.01", "0.1"}
    assert seqmia["n_members"] == seqmia["n_nonmembers"] == 100
    for name, report in metrics["attacks"].items():
        assert 0.0 <= report["auc"] <= 1.0 and 0.0 <= report["balanced_accuracy"] <= 1.0
        # Ties reported, never hidden; a trained attack scores in log-odds and must not tie
        # more than a handful of samples at the top of its ranking.
        assert report["top_tie"] >= 1 and 1 <= report["distinct_scores"] <= 200
        assert isinstance(report["straddled_fpr"], list)
        if name in TRAINED:
            assert report["top_tie"] <= 3, (name, report["top_tie"])
        lo, hi = report["ci95"]["auc"]
        assert lo <= report["auc"] <= hi
        assert set(report["ci95"]["tpr_at_fpr"]) == {"0.01", "0.1"}
    assert 0.0 <= metrics["attacks"]["rmia_offline"]["chosen"]["offline_a"] <= 1.0
    for role in ("target", "shadow"):
        assert set(metrics["models"][role]) == {"train_accuracy", "test_accuracy"}
    scores = pd.read_parquet(repo / "eval" / "scores.parquet")
    assert len(scores) == 200 and set(ATTACKS) <= set(scores.columns)
    assert (repo / "eval" / "roc.png").stat().st_size > 10_000
    report = (repo / "eval" / "report.html").read_text()
    assert "data:image/png;base64," in report and "trajectory_mia" in report
    roc = pd.read_csv(repo / "eval" / "roc" / "seqmia.csv")
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].iloc[-1] == 1.0

    info = json.loads((repo / "data" / "prepared" / "info.json").read_text())
    assert info["n_samples"] == 1797 and len(info["sha256"]) == 64


def undeclared_reads(reads: list[str], dvc: dict) -> list[str]:
    """The ``<stage> <key>`` lines of ``reads`` whose key the stage's ``params:`` in ``dvc`` does
    not declare, itself or through a parent section."""
    missing = []
    for line in reads:
        stage, key = line.split()
        declared = dvc["stages"][stage].get("params", [])
        if not any(key == d or key.startswith(d + ".") for d in declared):
            missing.append(line)
    return missing


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)], ids=["laptop", "phone"])
def test_report_fits_laptop_and_phone_windows_in_a_real_browser(
    clean_run, tmp_path: Path, width: int, height: int
) -> None:
    """The run's report laid out by headless Chromium: no horizontal page scroll (on a phone
    wide tables scroll inside their box, on a laptop they fit), every figure within the window,
    and the answer paragraph first and on the first screen. The check itself must fail on the
    page as it was before figures were bounded (the ROC figure cut off behind a horizontal
    scroll bar)."""
    browser = browser_or_skip()
    repo, _, _ = clean_run
    page = (repo / "eval" / "report.html").read_text()
    laid = measure_layout(browser, page, width, height, tmp_path)
    assert laid["scroll_width"] <= laid["width"] and laid["beyond"] == [], laid
    assert len(laid["images"]) >= 2  # the ROC figure and the gallery of exposed members
    for image in laid["images"]:
        assert image["height"] > 0 and image["right"] <= laid["width"], (image, laid["width"])
    if width >= 1280:  # on a laptop even the widest table fits without its own scroll bar
        assert all(box["content"] <= box["shown"] for box in laid["boxes"]), laid["boxes"]
    assert laid["first_paragraph"]["class"] == "answer"
    assert laid["first_paragraph"]["bottom"] <= height

    unbounded = page.replace("img { max-width: 100%; height: auto; }", "")
    assert unbounded != page
    before = measure_layout(browser, unbounded, width, height, tmp_path / "unbounded")
    assert before["scroll_width"] > before["width"] and before["beyond"], before


def test_every_params_key_a_stage_reads_is_declared_in_dvc_yaml(clean_run) -> None:
    """An undeclared read would let DVC reuse a stale result after that key changes."""
    repo, _, _ = clean_run
    reads = sorted(set((repo.parent / "params_reads.txt").read_text().splitlines()))
    assert {line.split()[0] for line in reads} == set(STAGES)  # every stage read through it
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    assert undeclared_reads(reads, dvc) == []
    # The check bites: without its `train` section, the train stage's reads are undeclared.
    dvc["stages"]["train"]["params"].remove("train")
    assert any(line.startswith("train train.") for line in undeclared_reads(reads, dvc))


def test_unchanged_repro_runs_nothing(clean_run, env: dict[str, str]) -> None:
    repo, _, _ = clean_run
    assert stages_run(repro(repo, env).stdout) == []


def test_budget_comparison_takes_every_smaller_budget_from_one_run(
    clean_run, env: dict[str, str]
) -> None:
    """``flows.budget`` reruns nothing DVC has (the clean run's stages come from its run-cache),
    leaves the checkout alone, and its largest budgets are the run's own results."""
    repo, _, metrics = clean_run
    args = ["--seeds", "0", "--references", "1", "2", "--snapshots", "3", "12"]
    result = subprocess.run(
        [sys.executable, "-m", "flows.budget", *args, "--fprs", "0.01", "0.1"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Running stage" not in result.stdout + result.stderr  # every stage restored
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True
    )
    assert status.stdout == b""
    budget = json.loads((repo / "eval" / "budget.json").read_text())
    points = {(p["attack"], p["setting"]): p for p in budget["points"]}
    own = metrics["attacks"]
    for (attack, setting), name in {
        ("lira_offline", "k=2"): "lira_offline",
        ("rmia_offline", "k=2"): "rmia_offline",
        ("seqmia", "n=12"): "seqmia",
        ("quantile_mia", ""): "quantile_mia",
    }.items():
        point = points[(attack, setting)]
        assert point["auc"] == pytest.approx(own[name]["auc"])
        assert point["tpr_at_fpr"] == {f: own[name]["tpr_at_fpr"][f] for f in ("0.01", "0.1")}
        assert point["sample_epochs"] == own[name]["cost"]["sample_epochs"]
    one, two = points[("lira_offline", "k=1")], points[("lira_offline", "k=2")]
    assert (one["models"], two["models"]) == (2, 3)  # the shadow model and k references
    assert one["sample_epochs"] < two["sample_epochs"]
    short, long = points[("seqmia", "n=3")], points[("seqmia", "n=12")]
    assert short["sample_epochs"] < long["sample_epochs"] and short["models"] == long["models"]
    table = (repo / "eval" / "budget.md").read_text()
    assert "| seqmia | n=3 |" in table and "TPR@10% FPR" in table
    assert (repo / "eval" / "budget.png").read_bytes()[:4] == b"\x89PNG"


def test_changing_attack_params_reruns_only_attack_and_evaluate(
    clean_run, env: dict[str, str]
) -> None:
    repo, _, _ = clean_run
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["attack"].update(epochs=6, ensemble=2, input_transform="log_loss_metrics_standardize")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = repro(repo, env)
    assert stages_run(result.stdout) == ["attack", "evaluate"]  # not baselines, not models
    history = pd.read_csv(repo / "eval" / "attack_history.csv")
    assert history["epoch"].tolist() == list(range(1, 7))
    summary = json.loads((repo / "data" / "attack" / "summary.json").read_text())
    assert summary["ensemble"] == 2 and len(summary["ensemble_members"]) == 2
    assert summary["scaler_log_mask"] == [True, False, False, True, True]  # loss, entropy, m_ent.
    assert (repo / "data" / "attack" / "seqmia_2.pt").is_file()
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    assert metrics["attacks"]["seqmia"]["top_tie"] <= 3


def test_killed_stage_leaves_no_cached_artefact_and_repro_recovers(
    clean_run, tmp_path: Path, env: dict[str, str]
) -> None:
    """Kill ``dvc repro`` mid-distillation; the next ``dvc repro`` must finish with exactly the
    metrics of an uninterrupted run (which also shows the pipeline is reproducible)."""
    _, _, clean_metrics = clean_run
    repo = make_repo(tmp_path / "repo", tiny_params())
    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = repo / "data" / "snapshots" / "target" / "epoch_002.pt"
    deadline = time.monotonic() + 600
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert partial.exists(), "distillation never started"
    last = repo / "data" / "snapshots" / "target" / "epoch_012.pt"
    assert not last.exists(), "the stage finished before it could be killed"
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").exists() else {}
    assert "distill" not in lock.get("stages", {}), "a killed stage was recorded as done"
    leftovers = [p for p in (repo / "data").rglob("*.tmp")]
    assert all(p.name.startswith(".") for p in leftovers)  # only hidden temp names, never outs

    result = repro(repo, env)
    assert stages_run(result.stdout)[0] == "distill"
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    # On a mismatch, say which numbers and which stages' outputs differ, not only that they do.
    clean_lock = clean_run[0].parent / "clean_dvc.lock"
    want, got = output_hashes(clean_lock), output_hashes(repo / "dvc.lock")
    stages = [out for out in want if got.get(out) != want[out]]
    numbers = leaf_differences(metrics, clean_metrics)
    assert not stages and not numbers, f"outputs differ: {stages}; numbers: {numbers[:30]}"
    assert metrics == clean_metrics


def _stage(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_bad_params_stop_before_any_work(tmp_path: Path, env: dict[str, str]) -> None:
    params = tiny_params()
    params["train"]["model"] = "resnet999"
    del params["attack"]["epochs"]
    repo = make_repo(tmp_path / "repo", params)
    started = time.monotonic()
    result = _stage(["flows.train"], env, repo)
    assert result.returncode == 2
    assert "train.model" in result.stderr and "small_cnn" in result.stderr
    assert not (repo / "data").exists()
    assert time.monotonic() - started < 60


def test_missing_dataset_names_paths_and_remedies(tmp_path: Path, env: dict[str, str]) -> None:
    params = tiny_params()
    params["data"].update(name="cifar10", download="never")  # offline: tests/test_downloads.py
    repo = make_repo(tmp_path / "repo", params)
    empty = tmp_path / "empty_root"
    empty.mkdir()
    result = _stage(["flows.prepare"], {**env, "SEQMIA_DATA_ROOT": str(empty)}, repo)
    assert result.returncode == 2
    message = result.stderr
    assert str(empty / "cifar10" / "train") in message
    assert "SEQMIA_DATA_ROOT" in message and "data.download" in message
    assert not (repo / "data" / "prepared" / "dataset.npz").exists()


def test_target_data_never_reaches_attack_training(
    clean_run, tmp_path: Path, env: dict[str, str]
) -> None:
    """Scramble every target-side input; the attack models trained on shadow data must come out
    bit-identical, while the target scores change."""
    source, _, _ = clean_run
    repo = tmp_path / "repo"
    shutil.copytree(source, repo, symlinks=True)
    attack_before = (repo / "data" / "attack" / "seqmia.pt").read_bytes()
    summary_before = json.loads((repo / "data" / "baselines" / "summary.json").read_text())
    scores_before = pd.read_parquet(repo / "data" / "baselines" / "scores.parquet")

    for path in (
        repo / "data" / "sequences" / "target.parquet",
        repo / "data" / "final_logits" / "target.parquet",
    ):
        frame = pd.read_parquet(path)
        values = [c for c in frame.columns if c not in ("sample_id", "part", "member", "label")]
        values = [c for c in values if c != "snapshot"]
        frame[values] = frame[values].sample(frac=1.0, random_state=1).to_numpy() * 3.0
        path.chmod(0o644)
        path.unlink()
        frame.to_parquet(path, index=False)
    for flow in ("flows.attack", "flows.baselines"):
        result = _stage([flow], env, repo)
        assert result.returncode == 0, result.stderr[-3000:]

    assert (repo / "data" / "attack" / "seqmia.pt").read_bytes() == attack_before
    summary_after = json.loads((repo / "data" / "baselines" / "summary.json").read_text())
    drop_time = lambda s: {k: {**v, "seconds": 0} for k, v in s.items()}  # noqa: E731
    assert drop_time(summary_after) == drop_time(summary_before)
    scores_after = pd.read_parquet(repo / "data" / "baselines" / "scores.parquet")
    assert not scores_after["trajectory_mia"].equals(scores_before["trajectory_mia"])


def test_dask_task_runner_trains_the_same_models(
    clean_run, tmp_path: Path, env: dict[str, str]
) -> None:
    """SEQMIA_TASK_RUNNER=dask sends a stage's tasks to a local Dask cluster of worker processes;
    the models come out bit-identical to the thread pool's."""
    source, _, _ = clean_run
    repo = tmp_path / "repo"
    shutil.copytree(source, repo, symlinks=True)
    models = repo / "data" / "models"
    before = {p.name: p.read_bytes() for p in models.glob("*.pt")}
    for path in models.iterdir():
        path.chmod(0o644)
        path.unlink()
    result = _stage(["flows.train"], {**env, "SEQMIA_TASK_RUNNER": "dask"}, repo)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "LocalCluster" in output  # the tasks really went through Dask
    assert {p.name: p.read_bytes() for p in models.glob("*.pt")} == before


def test_experiments_line_up_in_a_120_column_terminal(
    clean_run, tmp_path: Path, env: dict[str, str]
) -> None:
    """``eval/headline.json`` is the DVC metrics file (the full report is an output): two
    experiments' headline numbers print in ``dvc exp show --only-changed`` at 120 columns."""
    source, _, _ = clean_run
    repo = tmp_path / "repo"
    shutil.copytree(source, repo, symlinks=True)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "the run"]):  # as a user commits
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    headline = json.loads((repo / "eval" / "headline.json").read_text())
    full = json.loads((repo / "eval" / "metrics.json").read_text())  # earlier tests moved it on
    assert headline["seqmia_auc"] == full["attacks"]["seqmia"]["auc"]
    assert list(headline) == [
        "train_acc",
        "test_acc",
        "seqmia_auc",
        "seqmia@1%",  # the tiny run reports 1% and 10% FPR
        "ablation@1%",
        "trajectory@1%",
        "nn@1%",
        "reference@1%",
        "quantile@1%",
        "metric@1%",
    ]
    values = {}
    for hidden in (8, 16):  # other attack models: SeqMIA's numbers change, nothing else
        name = f"hidden-{hidden}"
        run = subprocess.run(
            ["dvc", "exp", "run", "--name", name, "-S", f"attack.hidden_size={hidden}"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        values[name] = json.loads((repo / "eval" / "headline.json").read_text())
    shown = subprocess.run(
        ["dvc", "exp", "show", "--only-changed", "--no-pager"],
        cwd=repo,
        env={**env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    for name, headline in values.items():
        row = next((line for line in lines if name in line), None)
        assert row is not None, shown.stdout
        for value in (headline["seqmia_auc"], headline["seqmia@1%"]):
            assert f"{value:.5g}".rstrip("0").rstrip(".") in row, (name, value, shown.stdout)
