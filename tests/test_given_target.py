"""End to end: audit a target model the pipeline did not train (``target.source: checkpoint``),
with real ``dvc repro`` on the tiny digits configuration.

A model is trained outside the pipeline by the plain PyTorch example script of docs/, saved as a
state dict and as a torch.export program, and audited; a second, non-registry model comes in
through a user factory. Auditing the pipeline's own target, exported with its member list, gives
the normal run's metrics exactly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from seqmia.data.readers import image_folder_index
from tests.conftest import REPO, STAGES
from tests.test_pipeline import make_repo, repro, stages_run, tiny_params

pytestmark = pytest.mark.slow

SIZE = 12  # the external model takes 12x12 RGB: the audit must resize and convert the 8x8 scans


@pytest.fixture(scope="module")
def env(prefect_env: dict[str, str], digits_root: Path) -> dict[str, str]:
    return {**prefect_env, "SEQMIA_DATA_ROOT": str(digits_root), "PYTHONPATH": ""}


def write_params(repo: Path, **target) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["target"].update(target)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_repo(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    return dest


def logits_of(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("logit_")]].to_numpy()


@pytest.fixture(scope="module")
def normal_run(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]):
    """The pipeline with its own trained target: a repository after ``dvc repro`` and its
    metrics."""
    repo = make_repo(tmp_path_factory.mktemp("normal") / "repo", tiny_params())
    repro(repo, env)
    return repo, json.loads((repo / "eval" / "metrics.json").read_text())


def test_own_target_as_checkpoint_gives_identical_metrics(
    normal_run, tmp_path: Path, env: dict[str, str]
) -> None:
    source, metrics = normal_run
    repo = copy_repo(source, tmp_path / "repo")
    shutil.copy(repo / "data" / "models" / "target.pt", repo / "target" / "own.pt")
    partition = pd.read_parquet(repo / "data" / "partition.parquet")
    for name, part in (("members", "target_in"), ("nonmembers", "target_out")):
        ids = partition.loc[partition["role"] == part, "sample_id"]
        (repo / "target" / f"{name}.txt").write_text("\n".join(map(str, ids)) + "\n")
    write_params(
        repo,
        source="checkpoint",
        checkpoint="target/own.pt",
        members="target/members.txt",
        nonmembers="target/nonmembers.txt",
    )
    result = repro(repo, env)
    assert "partition" in stages_run(result.stdout) and "prepare" not in stages_run(result.stdout)
    assert json.loads((repo / "eval" / "metrics.json").read_text()) == metrics
    report = json.loads((repo / "data" / "models" / "target.json").read_text())
    trained = json.loads((source / "data" / "models" / "target.json").read_text())
    assert report["source"] == "checkpoint" and report["parameters"] == trained["parameters"]
    digest = hashlib.sha256((repo / "target" / "own.pt").read_bytes()).hexdigest()
    assert report["sha256"]["checkpoint"] == digest
    assert not (repo / "data" / "models" / "target.pt").exists()  # the weights are not copied


def external_params() -> dict:
    """What the docs script says to pass for its model, with its preprocessing."""
    return {
        "source": "checkpoint",
        "members": "target/members.txt",
        "nonmembers": "target/nonmembers.txt",
        "resize": [SIZE, SIZE],
        "channels": 3,
    }


def plain_input(root: Path, paths: list[str], preprocessing: dict) -> torch.Tensor:
    """The external model's input, computed here with PIL and torch, not with the pipeline."""
    images = [np.asarray(Image.open(root / p).convert("RGB")) for p in paths]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True)
    mean = torch.tensor(preprocessing["mean"]).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor(preprocessing["std"]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def external_run(normal_run, tmp_path_factory, env: dict[str, str], digits_root: Path):
    """A model trained outside the pipeline (the docs script), audited from its state dict."""
    repo = copy_repo(normal_run[0], tmp_path_factory.mktemp("external") / "repo")
    script = subprocess.run(
        [
            sys.executable,
            str(REPO / "docs" / "train_external_target.py"),
            "--data",
            str(digits_root / "digits"),
            "--out",
            str(repo / "target"),
            "--members",
            "15",
            "--nonmembers",
            "12",
            "--epochs",
            "30",
            "--size",
            str(SIZE),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert script.returncode == 0, script.stderr[-3000:]
    preprocessing = json.loads((repo / "target" / "preprocessing.json").read_text())
    write_params(
        repo,
        **external_params(),
        checkpoint="target/model.pt",
        mean=preprocessing["mean"],
        std=preprocessing["std"],
    )
    result = repro(repo, env)
    return repo, result, preprocessing


def test_external_state_dict_is_audited_end_to_end(external_run, digits_root: Path) -> None:
    repo, result, preprocessing = external_run
    assert stages_run(result.stdout) == list(STAGES[1:])
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    assert metrics["attacks"]["seqmia"]["n_members"] == 100
    report = json.loads((repo / "data" / "models" / "target.json").read_text())
    model = torch.load(repo / "target" / "model.pt", weights_only=True)
    assert report["model"] == "small_cnn" and report["source"] == "checkpoint"
    net = _registry_small_cnn(model)
    assert report["parameters"] == sum(p.numel() for p in net.parameters())
    assert report["train_accuracy"] > 0.9 and report["train_accuracy"] > report["test_accuracy"]
    assert metrics["models"]["target"]["train_accuracy"] == report["train_accuracy"]

    # The parts: target members from the list, the attacker's parts from neither list.
    index = image_folder_index(f"image folder {digits_root / 'digits'}")
    listed = {}
    for name in ("members", "nonmembers"):
        listed[name] = {index[p] for p in (repo / "target" / f"{name}.txt").read_text().split()}
    partition = pd.read_parquet(repo / "data" / "partition.parquet")
    role = partition.groupby("role", observed=True)["sample_id"].apply(set)
    assert role["target_in"] <= listed["members"] and role["target_out"] <= listed["nonmembers"]
    for part in ("shadow_in", "shadow_out", "distill"):
        assert not role[part] & (listed["members"] | listed["nonmembers"])

    # The audit queried the model exactly as it was trained: its final logits on the target's
    # samples equal the model's own answer on inputs prepared here with PIL and plain torch.
    final = pd.read_parquet(repo / "data" / "final_logits" / "target.parquet")
    paths = {i: p for p, i in index.items()}
    with torch.no_grad():
        expected = net(
            plain_input(
                digits_root / "digits", [paths[i] for i in final["sample_id"]], preprocessing
            )
        )
    assert np.allclose(logits_of(final), expected.numpy(), atol=1e-4)


def _registry_small_cnn(state: dict) -> torch.nn.Module:
    from seqmia.models.architectures import build_model

    net = build_model("small_cnn", (3, SIZE, SIZE), 10, torch.Generator())
    net.load_state_dict(state)
    return net.eval()


def test_checkpoint_hash_decides_reruns(external_run, tmp_path: Path, env) -> None:
    repo = copy_repo(external_run[0], tmp_path / "repo")
    assert stages_run(repro(repo, env).stdout) == []
    state = torch.load(repo / "target" / "model.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] * 0.5
    torch.save(state, repo / "target" / "model.pt")
    status = subprocess.run(["dvc", "status"], cwd=repo, env=env, capture_output=True, text=True)
    for stage in ("partition", "train", "distill", "sequences"):
        assert f"{stage}:" in status.stdout
    assert "prepare:" not in status.stdout


def test_exported_program_gives_the_state_dicts_answers(
    external_run, tmp_path: Path, env: dict[str, str]
) -> None:
    source = external_run[0]
    repo = copy_repo(source, tmp_path / "repo")
    write_params(repo, checkpoint="target/model.pt2", run_code_in_exported_program=True)
    result = repro(repo, env, "sequences")  # every stage that touches the target
    assert stages_run(result.stdout) == ["partition", "train", "distill", "sequences"]
    report = json.loads((repo / "data" / "models" / "target.json").read_text())
    before = json.loads((source / "data" / "models" / "target.json").read_text())
    assert report["model"] == "exported program"
    for key in ("train_accuracy", "test_accuracy", "parameters"):
        assert report[key] == before[key]
    final = pd.read_parquet(repo / "data" / "final_logits" / "target.parquet")
    final_before = pd.read_parquet(source / "data" / "final_logits" / "target.parquet")
    # Same weights, other kernels: the exported graph's convolutions may sum in another order
    # (on CI's CPU some logits differed by more than 1e-5 + 1e-5 * |logit|), so the check allows
    # float32 rounding and would still catch any other model, whose logits differ by whole units.
    ours, theirs = logits_of(final), logits_of(final_before)
    gap = float(np.abs(ours - theirs).max())
    assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-3), f"largest difference {gap}"


USER_MODULE = """
import torch


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.body(x)


def build():
    return TinyNet()
"""


def test_user_factory_module_is_audited(
    external_run, tmp_path: Path, env: dict[str, str], digits_root: Path
) -> None:
    source, _, preprocessing = external_run
    repo = copy_repo(source, tmp_path / "repo")
    (repo / "target" / "usernet.py").write_text(USER_MODULE)
    namespace: dict = {}
    exec(USER_MODULE, namespace)  # the user's class, trained here in plain PyTorch
    torch.manual_seed(0)
    net = namespace["build"]()
    members = (repo / "target" / "members.txt").read_text().split()
    x = plain_input(digits_root / "digits", members, preprocessing)
    y = torch.tensor([int(Path(p).parent.name) for p in members])
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimiser.step()
    torch.save(net.state_dict(), repo / "target" / "usernet.pt")
    write_params(repo, checkpoint="target/usernet.pt", factory="target.usernet:build")
    result = repro(repo, env, "train")
    assert stages_run(result.stdout) == ["partition", "train"]
    report = json.loads((repo / "data" / "models" / "target.json").read_text())
    assert report["model"] == "target.usernet:build"
    assert report["parameters"] == sum(p.numel() for p in net.parameters())
    # Its accuracy on the drawn members, computed here from the same plain inputs.
    index = image_folder_index(f"image folder {digits_root / 'digits'}")
    partition = pd.read_parquet(repo / "data" / "partition.parquet")
    drawn = set(partition.loc[partition["role"] == "target_in", "sample_id"])
    chosen = [p for p in members if index[p] in drawn]
    with torch.no_grad():
        predicted = net(plain_input(digits_root / "digits", chosen, preprocessing)).argmax(1)
    truth = torch.tensor([int(Path(p).parent.name) for p in chosen])
    assert report["train_accuracy"] == pytest.approx(float((predicted == truth).float().mean()))


def _fails_before_work(repo: Path, env: dict[str, str], expected: list[str]) -> None:
    partition = repo / "data" / "partition.parquet"
    before = partition.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "flows.partition"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    line = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(line) == 1, result.stderr[-3000:]
    for text in expected:
        assert text in line[0], line[0]
    assert partition.read_bytes() == before


def test_bad_checkpoints_and_lists_fail_with_one_line(
    external_run, tmp_path: Path, env: dict[str, str]
) -> None:
    repo = copy_repo(external_run[0], tmp_path / "repo")
    (repo / "data" / "partition.parquet").chmod(0o644)
    target = repo / "target"
    members = (target / "members.txt").read_text().split()
    (target / "overlap.txt").write_text("\n".join(members[:3]) + "\n")
    write_params(repo, nonmembers="target/overlap.txt")
    _fails_before_work(repo, env, ["target.members and target.nonmembers share 3 samples"])

    (target / "unknown.txt").write_text("train/3/9999.png\n")
    write_params(repo, nonmembers="target/unknown.txt")
    _fails_before_work(repo, env, ["target.nonmembers", "train/3/9999.png"])

    write_params(repo, nonmembers="target/nonmembers.txt", checkpoint="target/broken.pt")
    (target / "broken.pt").write_bytes(b"\x00not a checkpoint")
    _fails_before_work(repo, env, ["broken.pt does not load"])

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["model"] = "mlp"
    params["target"]["checkpoint"] = "target/model.pt"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _fails_before_work(repo, env, ["does not fit mlp", "expected (", "found ("])
