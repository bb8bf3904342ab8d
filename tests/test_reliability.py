"""Hostile and broken inputs: each is refused with one line that names the culprit, runs nothing
it should not, and leaves nothing behind but the stage's own outputs.

Fast tests call the core; the stage tests run one real ``python -m flows.<stage>`` in a scratch
repository (the stop and preflight tests against the session's real Prefect server)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from benchmarks.scratch_repo import make_scratch_repo
from seqmia.base.artifacts import load_state_dict, remove_stale_temporaries, save_state_dict
from seqmia.base.errors import DamagedFileError, UserError
from seqmia.base.seeding import make_generator
from seqmia.data.partition import make_partition
from seqmia.data.readers import extract_archive, read_image_folder
from seqmia.data.sources import load_dataset
from seqmia.params.schema import ParamsError
from seqmia.params.whole import params_from_dict
from tasks.layout import Layout
from tests.conftest import REPO

# ---------------------------------------------------------------------------------------------
# helpers


def files_under(root: Path) -> dict[str, float]:
    """Every file below ``root`` (relative path -> mtime), without git's and DVC's own folders."""
    skip = (".git", ".dvc")
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in skip
    }


def stage(repo: Path, name: str, env: dict[str, str], timeout: float = 300):
    """``python -m flows.<name>`` in ``repo``: (completed process, seconds it took)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", f"flows.{name}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - started


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The stage's error: exit code 2 and exactly one ``error:`` line, no traceback."""
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return errors[0]


def tiny_params(**train) -> dict:
    """The repository's params for an 8x8 grey image folder of 10 classes, a few samples each."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["device"] = "cpu"
    params["data"].update(name="imagefolder", path="digits")
    params["partition"].update(
        unit="per_class", target_in=3, target_out=3, shadow_in=3, shadow_out=3, distill=4
    )
    params["train"].update({"epochs": 2, "batch_size": 10, **train})
    params["reference"]["models"] = 1
    params["distill"]["epochs"] = 2
    return params


def scratch_repo(path: Path, params: dict, models: bool = False) -> Path:
    """A scratch repository with a prepared dataset and partition written by the core (and, if
    ``models``, target and shadow weights): the inputs of the train and distill stages."""
    from seqmia.base.artifacts import write_npz, write_parquet
    from seqmia.models.architectures import build_model

    repo = make_scratch_repo(path, yaml.safe_dump(params, sort_keys=False))
    layout = Layout(repo)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)
    x = rng.integers(0, 256, size=(len(y), 8, 8, 1), dtype=np.uint8)
    write_npz(
        layout.dataset_file,
        x=x,
        y=y,
        split=np.full(len(y), "train"),
        classes=np.array([str(c) for c in range(10)]),
        mean=np.full((8, 8, 1), 0.5, np.float32),
        std=np.full((8, 8, 1), 0.25, np.float32),
    )
    sizes = {
        k: params["partition"][k]
        for k in ("target_in", "target_out", "shadow_in", "shadow_out", "distill")
    }
    write_parquet(layout.partition_file, make_partition(y, sizes, 0, unit="per_class"))
    if models:
        for role in ("target", "shadow"):
            model = build_model("small_cnn", (1, 8, 8), 10, make_generator(0, role))
            save_state_dict(layout.model_file(role), model)
    return repo


@pytest.fixture
def stage_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a stage run that needs no Prefect server (it stops before any flow)."""
    env = {**os.environ, "PYTHONPATH": "", "PREFECT_HOME": str(tmp_path / "prefect_home")}
    env.pop("PREFECT_API_URL", None)
    return env


def flip_weight_byte(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit inside ``tensor``'s stored bytes in ``path``; size and mtime stay the same."""
    blob = bytearray(path.read_bytes())
    at = bytes(blob).find(tensor.numpy().tobytes())
    assert at > 0, "tensor bytes not found in the file"
    stat = path.stat()
    blob[at + 1] ^= 0x01
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


# ---------------------------------------------------------------------------------------------
# 1. No code execution from the data root


class Payload:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _cifar10_folder(root: Path, protocol: int) -> Path:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "batch_label": b"batch",
            "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
            "labels": [0, 1],
            "filenames": [b"a.png", b"b.png"],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_pickles_of_plain_data_still_load(tmp_path, protocol):
    _cifar10_folder(tmp_path, protocol)
    data = load_dataset("cifar10", tmp_path)
    assert data.x.shape == (12, 32, 32, 3) and data.classes[0] == "c0"


def test_cifar_pickle_with_a_payload_is_refused_and_never_runs(tmp_path):
    folder = _cifar10_folder(tmp_path, protocol=2)
    marker = tmp_path / "payload_ran"
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": Payload(marker)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    before = files_under(tmp_path)
    with pytest.raises(DamagedFileError) as err:
        load_dataset("cifar10", tmp_path)
    message = str(err.value)
    assert str(folder / "data_batch_1") in message and "exec" in message
    assert "could run code" in message and "\n" not in message
    assert not marker.exists()
    assert files_under(tmp_path) == before


def test_cifar_pickle_refusal_reaches_the_prepare_stage_as_exit_2(tmp_path, prefect_env):
    root = tmp_path / "data_root"
    folder = _cifar10_folder(root, protocol=2)
    marker = tmp_path / "payload_ran"
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": Payload(marker)}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    params = tiny_params()
    params["data"].update(name="cifar10", path="")
    repo = make_scratch_repo(tmp_path / "repo", yaml.safe_dump(params, sort_keys=False))
    before = files_under(repo)
    result, _ = stage(
        repo, "prepare", {**prefect_env, "SEQMIA_DATA_ROOT": str(root), "PYTHONPATH": ""}
    )
    line = one_error_line(result)
    assert str(folder / "test_batch") in line and "could run code" in line
    assert not marker.exists()
    assert files_under(repo) == before  # nothing written, not even data/prepared/


def test_truncated_cifar_batch_named(tmp_path):
    folder = _cifar10_folder(tmp_path, protocol=2)
    _truncate(folder / "data_batch_3", 0.5)
    with pytest.raises(DamagedFileError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(folder / "data_batch_3") in str(err.value) and "re-download" in str(err.value)


# ---------------------------------------------------------------------------------------------
# 2. A failing task stops its stage


@pytest.mark.slow
def test_a_failing_role_stops_its_sibling_and_writes_nothing(tmp_path, prefect_env):
    # The shadow model would train for hours; the target's member part is empty, so its task
    # fails at once (on its accuracy over no samples). The stage must stop the shadow task
    # within seconds. (A part naming samples that do not exist is refused before any task.)
    repo = scratch_repo(tmp_path / "repo", tiny_params(epochs=100_000))
    layout = Layout(repo)
    import pandas as pd

    frame = pd.read_parquet(layout.partition_file)
    frame[frame["role"] != "target_in"].to_parquet(layout.partition_file, index=False)
    before = files_under(repo)
    result, seconds = stage(repo, "train", {**prefect_env, "PYTHONPATH": ""}, timeout=600)
    assert result.returncode != 0
    assert "Stopped" in result.stdout + result.stderr  # the sibling was stopped
    assert seconds < 120, seconds
    assert files_under(repo) == before  # neither model nor report written


@pytest.mark.slow
def test_a_damaged_teacher_stops_distill_before_any_task(tmp_path, prefect_env):
    repo = scratch_repo(tmp_path / "repo", tiny_params(), models=True)
    layout = Layout(repo)
    state = load_state_dict(layout.model_file("target"))
    flip_weight_byte(
        layout.model_file("target"),
        state["classifier.weight"] if "classifier.weight" in state else next(iter(state.values())),
    )
    before = files_under(repo)
    result, _ = stage(repo, "distill", {**prefect_env, "PYTHONPATH": ""})
    line = one_error_line(result)
    assert str(layout.model_file("target")) in line and "dvc checkout" in line
    assert files_under(repo) == before  # no shadow snapshot either


def test_attack_training_stops_when_asked():
    from seqmia.attacks.fit import train_attack
    from seqmia.attacks.networks import build_attack
    from seqmia.base.stopping import Stopped
    from seqmia.training.recipe import Recipe

    g = make_generator(0, "attack")
    x, y = torch.randn(40, 3, 2), torch.arange(40) % 2
    model = build_attack("lstm", (3, 2), 4)
    asked = []

    def should_stop() -> bool:  # a sibling fails during the third batch
        asked.append(1)
        return len(asked) > 2

    recipe = Recipe(
        optimizer="adam",
        epochs=1000,
        batch_size=10,
        lr=0.01,
        momentum=0.0,
        weight_decay=0.0,
        schedule="step",
        step_size=10,
        gamma=1.0,
        min_lr=0.0,
    )
    with pytest.raises(Stopped):
        train_attack(
            model,
            x[:30],
            y[:30],
            x[30:],
            y[30:],
            recipe,
            g,
            should_stop=should_stop,
            selection="best_val_auc",
        )
    assert len(asked) == 3  # asked before every batch, stopped at the first True


@pytest.mark.slow
def test_a_failing_baseline_stops_its_sibling_and_writes_nothing(tmp_path, prefect_env):
    # Two baselines side by side: seqmia_lstm would train for 100,000 epochs; trajectory_mia
    # trains one epoch on the shadow losses, then fails scoring the target, whose sequences
    # hold no loss. The stage must stop seqmia_lstm within seconds and write no scores.
    params = tiny_params()
    params["baselines"]["attacks"] = ["trajectory_mia", "seqmia_lstm"]
    params["baselines"]["trajectory_mia"]["epochs"] = 1
    params["baselines"]["seqmia_ablations"]["epochs"] = 100_000
    repo = scratch_repo(tmp_path / "repo", params)
    _write_sequence_outputs(Layout(repo), {"target": ("entropy", "m_entropy")})
    before = files_under(repo)
    result, seconds = stage(repo, "baselines", {**prefect_env, "PYTHONPATH": ""}, timeout=600)
    assert result.returncode != 0
    assert "(Stopped)" in result.stdout + result.stderr  # the sibling was stopped
    assert seconds < 120, seconds
    after = files_under(repo)
    after.pop("logs/timings.jsonl", None)  # the finished baseline's timing (no stage output)
    assert after == before


def _write_sequence_outputs(layout: Layout, metrics: dict[str, tuple[str, ...]]) -> None:
    """Plausible outputs of the sequences stage for both roles (3 snapshots; the metrics of
    ``metrics[role]``, else loss and entropy)."""
    import pandas as pd

    from seqmia.base.artifacts import write_parquet

    rng = np.random.default_rng(0)
    n = 40
    for role in ("target", "shadow"):
        base = pd.DataFrame(
            {
                "sample_id": np.arange(n),
                "part": [f"{role}_in"] * 20 + [f"{role}_out"] * 20,
                "member": [1] * 20 + [0] * 20,
                "label": np.arange(n) % 10,
            }
        )
        seq = pd.concat([base.assign(snapshot=t) for t in (1, 2, 3)], ignore_index=True)
        for m in metrics.get(role, ("loss", "entropy")):
            seq[m] = rng.random(len(seq))
        write_parquet(layout.sequences_file(role), seq)
        logits = base.assign(**{f"logit_{c}": rng.standard_normal(n) for c in range(10)})
        write_parquet(layout.final_logits_file(role), logits)


# ---------------------------------------------------------------------------------------------
# 2b. Every stage loads its inputs before any work; a partition must fit its dataset


def _damage(path: Path) -> None:
    """A truncated Parquet or JSON file at ``path`` (a JSON object cut short)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text('{"metrics": ["loss", ')
    else:
        _truncate_bytes(path)


def _truncate_bytes(path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"sample_id": np.arange(100)}).to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# stage -> the input it reads first, damaged (every stage checks all its inputs before work)
FIRST_INPUT = {
    "sequences": lambda layout: layout.partition_file,
    "attack": lambda layout: layout.sequences_file("shadow"),
    "baselines": lambda layout: layout.sequences_file("target"),
    "evaluate": lambda layout: layout.attack_summary_file,
}


@pytest.mark.parametrize("name", FIRST_INPUT)
def test_damaged_input_named_by_its_stage_check(tmp_path, name):
    import tasks.attack
    import tasks.baselines
    import tasks.evaluate
    import tasks.sequences

    repo = scratch_repo(tmp_path / "repo", tiny_params(), models=True)
    layout = Layout(repo)
    params = params_from_dict(tiny_params())
    damaged = FIRST_INPUT[name](layout)
    _damage(damaged)
    check = {
        "sequences": lambda: tasks.sequences.check_sequences_inputs(
            params.distill.epochs, params.target, layout
        ),
        "attack": lambda: tasks.attack.check_attack_inputs(layout),
        "baselines": lambda: tasks.baselines.shadow_metrics(layout),
        "evaluate": lambda: tasks.evaluate.read_audit_inputs(params.reference.models, layout),
    }[name]
    with pytest.raises(DamagedFileError) as err:
        check()
    message = str(err.value)
    assert str(damaged) in message and "dvc checkout" in message and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("name", FIRST_INPUT)
def test_damaged_input_stops_its_stage_before_any_work(tmp_path, prefect_env, name):
    repo = scratch_repo(tmp_path / "repo", tiny_params(), models=True)
    layout = Layout(repo)
    damaged = FIRST_INPUT[name](layout)
    _damage(damaged)
    before = files_under(repo)
    result, _ = stage(repo, name, {**prefect_env, "PYTHONPATH": ""})
    line = one_error_line(result)
    assert str(damaged) in line and "dvc checkout" in line
    assert files_under(repo) == before


def _partition_of_another_dataset(layout: Layout, shift: int = 0, relabel: bool = False) -> None:
    import pandas as pd

    frame = pd.read_parquet(layout.partition_file)
    frame["sample_id"] += shift
    if relabel:
        frame["label"] = (frame["label"] + 1) % 10
    frame.to_parquet(layout.partition_file, index=False)


@pytest.mark.parametrize(
    ("shift", "relabel", "expected"),
    [
        (10_000, False, "ids out of range"),
        (-1_000, False, "ids out of range"),
        (0, True, "other labels"),
    ],
)
def test_partition_of_another_dataset_refused(tmp_path, shift, relabel, expected):
    from tasks.common import check_inputs

    layout = Layout(scratch_repo(tmp_path / "repo", tiny_params()))
    _partition_of_another_dataset(layout, shift, relabel)
    with pytest.raises(UserError) as err:
        check_inputs([layout.dataset_file, layout.partition_file])
    message = str(err.value)
    assert str(layout.partition_file) in message and str(layout.dataset_file) in message
    assert expected in message and "dvc repro partition" in message


@pytest.mark.slow
def test_partition_of_another_dataset_stops_train_before_any_task(tmp_path, prefect_env):
    repo = scratch_repo(tmp_path / "repo", tiny_params())
    layout = Layout(repo)
    _partition_of_another_dataset(layout, shift=10_000)
    before = files_under(repo)
    result, _ = stage(repo, "train", {**prefect_env, "PYTHONPATH": ""})
    line = one_error_line(result)
    assert str(layout.partition_file) in line and str(layout.dataset_file) in line
    assert files_under(repo) == before


# ---------------------------------------------------------------------------------------------
# 3. Errors that name the file


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8), mode="L").save(path)


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _image_tree(root: Path) -> Path:
    for split in ("train", "test"):
        for label in ("a", "b"):
            for i in range(2):
                _png(root / split / label / f"{i}.png", 40 * i)
    return root


@pytest.mark.parametrize(
    "blob",
    [_jpeg_bytes()[:300], b"", b"these are not the pixels you are looking for\n"],
    ids=["truncated-jpeg", "zero-bytes", "text-named-jpg"],
)
def test_unreadable_image_named(tmp_path, blob):
    folder = _image_tree(tmp_path / "set")
    bad = folder / "train" / "b" / "broken.jpg"
    bad.write_bytes(blob)
    with pytest.raises(DamagedFileError) as err:
        read_image_folder(folder)
    message = str(err.value)
    assert str(bad) in message and "re-download" in message and "\n" not in message


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.99])
def test_truncated_weights_named(tmp_path, keep):
    path = tmp_path / "model.pt"
    save_state_dict(path, torch.nn.Linear(40, 30))
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(DamagedFileError) as err:
        load_state_dict(path)
    message = str(err.value)
    assert str(path) in message and "dvc checkout" in message and "\n" not in message


def _truncate(path: Path, keep: float = 0.5) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])


def test_truncated_location_archive_named(tmp_path):
    rng = np.random.default_rng(0)
    lines = [
        f'"{rng.integers(1, 4)}",' + ",".join(map(str, rng.integers(0, 2, 400))) for _ in range(200)
    ]
    archive = tmp_path / "location" / "dataset_location.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        blob = ("\n".join(lines) + "\n").encode()
        info = tarfile.TarInfo("bangkok")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    _truncate(archive)
    with pytest.raises(DamagedFileError) as err:
        load_dataset("location", tmp_path)
    assert str(archive) in str(err.value) and "re-download" in str(err.value)


def test_truncated_news_archive_named(tmp_path):
    archive = tmp_path / "news20" / "20news-bydate.tar.gz"
    archive.parent.mkdir()
    rng = np.random.default_rng(0)
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for i in range(30):
                words = " ".join(f"w{rng.integers(0, 5000)}" for _ in range(300)).encode()
                info = tarfile.TarInfo(f"20news-bydate-{split}/g{i % 3}/{i}")
                info.size = len(words)
                tar.addfile(info, io.BytesIO(words))
    _truncate(archive)
    with pytest.raises(DamagedFileError) as err:
        load_dataset("news20", tmp_path, vocab_size=50)
    assert str(archive) in str(err.value) and "re-download" in str(err.value)


def test_truncated_idx_file_named(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 6), ("t10k", 4)):
        images = np.zeros((n, 28, 28), np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(
                b"\x00\x00\x08\x03" + np.array([n, 28, 28], ">u4").tobytes() + images.tobytes()
            )
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            b"\x00\x00\x08\x01" + np.array([n], ">u4").tobytes() + bytes(n)
        )
    bad = raw / "train-images-idx3-ubyte.gz"
    _truncate(bad, 0.6)
    with pytest.raises(DamagedFileError) as err:
        load_dataset("mnist", tmp_path)
    assert str(bad) in str(err.value)


# ---------------------------------------------------------------------------------------------
# 4. Classes


def test_hidden_entries_are_not_classes_or_samples(tmp_path):
    folder = _image_tree(tmp_path / "set")
    for split in ("train", "test"):
        _png(folder / split / ".ipynb_checkpoints" / "0-checkpoint.png")
        _png(folder / split / "a" / ".hidden.png", 255)
    data = read_image_folder(folder)
    assert data.classes == ["a", "b"] and len(data.y) == 8
    assert data.x.max() < 255  # the hidden file was not read


def test_empty_class_folder_named(tmp_path):
    folder = _image_tree(tmp_path / "set")
    (folder / "train" / "aa_empty").mkdir()
    (folder / "train" / "aa_empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError) as err:
        read_image_folder(folder)
    assert str(folder / "train" / "aa_empty") in str(err.value)


def test_differing_class_sets_name_the_missing_classes(tmp_path):
    folder = _image_tree(tmp_path / "set")
    _png(folder / "train" / "c" / "0.png")
    with pytest.raises(UserError) as err:
        read_image_folder(folder)
    assert "missing in test: ['c']" in str(err.value)


# ---------------------------------------------------------------------------------------------
# 5. Values refused before any work


def _base() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["train"].update(lr=float("inf")), "'train.lr' must be a finite number"),
        (lambda p: p["train"].update(lr=float("nan")), "'train.lr' must be a finite number"),
        (
            lambda p: p["attack"].update(weight_decay=float("inf")),
            "'attack.weight_decay' must be a finite number",
        ),
        (
            lambda p: p["baselines"]["trajectory_mia"].update(weight_decay=float("nan")),
            "'baselines.trajectory_mia.weight_decay' must be a finite number",
        ),
        (lambda p: p.update(trian={"epochs": 3}), "unknown params key 'trian'"),
        (
            lambda p: p.pop("distill"),
            "missing section 'distill' (expected a section with keys "
            "['epochs', 'temperature', 'shadow_extra_epochs'])",
        ),
        (
            lambda p: p["attack"].update(val_fraction=0.0001),
            "'attack.val_fraction' is 0.0001, which holds out 0 of the 2500 shadow_in samples",
        ),
        (
            lambda p: (
                p["partition"].update(unit="total", target_in=30, shadow_in=40, shadow_out=40),
                p["baselines"].update(val_fraction=0.01),
            ),
            "'baselines.val_fraction' is 0.01, which holds out 0 of the 40 shadow_in samples",
        ),
    ],
    ids=[
        "inf-lr",
        "nan-lr",
        "inf-wd",
        "nan-wd",
        "unknown-top",
        "missing-section",
        "val-per-class",
        "val-total",
    ],
)
def test_values_refused_in_one_line(change, expected):
    params = _base()
    change(params)
    with pytest.raises(ParamsError) as err:
        params_from_dict(params)
    assert expected in str(err.value) and "\n" not in str(err.value)


# Devices this machine lacks: any CUDA device without CUDA, else the index one past the last GPU.
_COUNT = torch.cuda.device_count() if torch.cuda.is_available() else 0
MISSING_DEVICES = [f"cuda:{_COUNT}"] if _COUNT else ["cuda", "cuda:1"]


@pytest.mark.parametrize("device", MISSING_DEVICES)
def test_missing_cuda_device_refused_before_work(tmp_path, stage_env, device):
    params = tiny_params()
    params["device"] = device
    repo = scratch_repo(tmp_path / "repo", params)
    before = files_under(repo)
    result, _ = stage(repo, "train", stage_env)
    line = one_error_line(result)
    assert f"params key 'device' is '{device}'" in line and "CUDA device" in line
    assert files_under(repo) == before


# ---------------------------------------------------------------------------------------------
# 6. Leftovers and hangs


def test_stale_temporaries_removed_from_the_stage_outputs_only(tmp_path):
    from flows._stage import stage_outputs

    outputs = stage_outputs(REPO, "distill") + stage_outputs(REPO, "partition")
    assert REPO / "data" / "snapshots" in outputs and REPO / "data" / "partition.parquet" in outputs
    data = tmp_path / "data"
    stale = [
        data / "snapshots" / "target" / ".epoch_003.pt.k2j4.tmp",
        data / ".partition.parquet.x81q.tmp",
    ]
    kept = [
        data / "prepared" / ".dataset.npz.ab12.tmp",
        data / "snapshots" / "target" / "e.pt",
        data / ".other.parquet.x81q.tmp",
    ]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    removed = remove_stale_temporaries([data / "snapshots", data / "partition.parquet"])
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


@pytest.mark.slow
def test_stage_start_removes_its_stale_temporaries(tmp_path, prefect_env):
    repo = scratch_repo(tmp_path / "repo", tiny_params())
    stale = repo / "data" / "models" / ".target.pt.q1w2.tmp"
    foreign = repo / "data" / "prepared" / ".dataset.npz.q1w2.tmp"
    for path in (stale, foreign):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    before = files_under(repo)
    result, _ = stage(repo, "train", {**prefect_env, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    after = files_under(repo)
    assert not stale.exists() and foreign.exists()
    written = set(after) - set(before) - {"logs/timings.jsonl"}  # timings: no stage output
    assert written == {f"data/models/{r}.{e}" for r in ("target", "shadow") for e in ("pt", "json")}


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_interrupted_extraction_leaves_no_half_tree(tmp_path):
    rng = np.random.default_rng(0)
    members = {
        f"{split}/c/{i}.bin": rng.bytes(20_000)
        for split in ("valid", "test", "train")
        for i in range(5)
    }
    archive = _tar(tmp_path / "CINIC-10.tar.gz", members)
    _truncate(archive, 0.8)  # ends inside train/: the members before it extract fine
    dest = tmp_path / "cinic10"
    with pytest.raises(DamagedFileError) as err:
        extract_archive(archive, dest)
    assert str(archive) in str(err.value)
    assert list(dest.iterdir()) == []  # no half-extracted split, no temporary folder


def test_complete_extraction_moves_into_place(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", {"train/c/0.bin": b"1", "test/c/0.bin": b"2"})
    dest = tmp_path / "cinic10"
    extract_archive(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train"]
    assert (dest / "train" / "c" / "0.bin").read_bytes() == b"1"


def test_silent_prefect_api_named_within_timeout(tmp_path, stage_env):
    """A server that accepts connections and never answers: one line naming its URL, exit 2."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])  # hold it open, never reply
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/api"
    try:
        repo = scratch_repo(tmp_path / "repo", tiny_params())
        before = files_under(repo)
        env = {**stage_env, "PREFECT_API_URL": url, "PREFECT_API_REQUEST_TIMEOUT": "3"}
        result, seconds = stage(repo, "train", env, timeout=120)
    finally:
        done.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
    line = one_error_line(result)
    assert url in line and "did not answer within 3 s" in line
    assert accepted and seconds < 60
    assert files_under(repo) == before


# ---------------------------------------------------------------------------------------------
# 7. Integrity of saved weights


def test_same_size_byte_flip_with_mtime_kept_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    layer = torch.nn.Linear(16, 8)
    save_state_dict(path, layer)
    flip_weight_byte(path, layer.weight.detach())
    # torch itself reads the flipped file without complaint, with different numbers:
    raw = torch.load(path, weights_only=True)
    assert not torch.equal(raw["weight"], layer.weight.detach())
    with pytest.raises(DamagedFileError) as err:
        load_state_dict(path)
    message = str(err.value)
    assert str(path) in message and "changed after it was written" in message
    assert "dvc checkout" in message


def test_weights_round_trip_and_foreign_checkpoints_load(tmp_path):
    layer = torch.nn.Linear(4, 3)
    save_state_dict(tmp_path / "ours.pt", layer)
    state = load_state_dict(tmp_path / "ours.pt")
    assert set(state) == {"weight", "bias"}  # the checksum is not part of the weights
    torch.save(layer.state_dict(), tmp_path / "theirs.pt")  # no checksum: loads unchecked
    assert torch.equal(load_state_dict(tmp_path / "theirs.pt")["weight"], layer.weight)


def test_checked_inputs_are_returned_only_when_the_stage_keeps_them(tmp_path):
    from seqmia.base.artifacts import write_json
    from tasks.common import check_inputs

    weights, report = tmp_path / "model.pt", tmp_path / "report.json"
    save_state_dict(weights, torch.nn.Linear(2, 1))
    write_json(report, {"accuracy": 0.5})
    kept = check_inputs([weights, report], keep=True)
    assert kept[weights]["weight"].shape == (1, 2)
    assert kept[report] == {"accuracy": 0.5}
    assert check_inputs([weights, report]) == {}  # checked, then dropped
