"""A given target: member lists, the partition around them, preprocessing, loading and errors."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from seqmia.data.inputs import to_model_input
from seqmia.data.partition import PartitionError, given_target_partition, make_partition, part_ids
from seqmia.data.readers import image_folder_index
from seqmia.models.architectures import build_model
from seqmia.models.registry import ModelOptions
from seqmia.params.schema import ParamsError
from seqmia.params.whole import params_from_dict
from seqmia.target.checkpoint import (
    ExportedTarget,
    Preprocessing,
    check_target_runs,
    describe_builder,
    load_factory,
    load_target,
    preprocess,
    target_input,
    target_logits,
    target_record,
)
from seqmia.target.files import CheckpointError, target_file
from seqmia.target.members import check_disjoint_lists, parse_sample_list, read_sample_list
from tests.conftest import REPO

SIZES = {"target_in": 3, "target_out": 3, "shadow_in": 2, "shadow_out": 2, "distill": 4}


def small_cnn(seed: int = 0) -> torch.nn.Module:
    return build_model("small_cnn", (1, 8, 8), 10, torch.Generator().manual_seed(seed)).eval()


# ----- member lists ---------------------------------------------------------------------------


def test_sample_list_reads_ids_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "members.txt"
    path.write_text("# the target's training set\n5\n\n2  # a comment\n5\n")
    entries = read_sample_list(path)
    assert entries == ["5", "2", "5"]
    assert parse_sample_list(entries, 10, None, "target.members").tolist() == [2, 5]


def test_sample_list_refuses_unknown_ids() -> None:
    with pytest.raises(CheckpointError, match=r"target.members has 2 unknown sample ids.*0 to 9"):
        parse_sample_list(["3", "10", "-1"], 10, None, "target.members")


def test_sample_list_maps_image_paths(tmp_path: Path) -> None:
    files = [("train", "a", "1.png"), ("train", "b", "0.png"), ("test", "a", "2.png")]
    for split, cls, name in files:
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / split / cls / name).write_bytes(b"")
    index = image_folder_index(f"image folder {tmp_path}")
    assert index == {"train/a/1.png": 0, "train/b/0.png": 1, "test/a/2.png": 2}
    assert image_folder_index("torchvision CIFAR python layout /x") is None
    ids = parse_sample_list(["test/a/2.png", "train/a/1.png"], 3, index, "target.nonmembers")
    assert ids.tolist() == [0, 2]
    with pytest.raises(CheckpointError, match=r"1 paths .*'train/c/9.png'"):
        parse_sample_list(["train/a/1.png", "train/c/9.png"], 3, index, "target.nonmembers")
    with pytest.raises(CheckpointError, match="not read from an image folder"):
        parse_sample_list(["train/a/1.png"], 3, None, "target.members")


def test_overlapping_lists_are_refused() -> None:
    check_disjoint_lists(np.array([1, 2]), np.array([3]))
    with pytest.raises(CheckpointError, match=r"share 1 samples, e.g. sample ids \[2\]"):
        check_disjoint_lists(np.array([1, 2]), np.array([2, 3]))


def test_target_files_must_lie_in_the_target_folder(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "m.txt").write_text("1\n")
    (tmp_path / "elsewhere.txt").write_text("1\n")
    assert target_file(tmp_path, "target/m.txt", "target.members").name == "m.txt"
    with pytest.raises(CheckpointError, match="outside the target/ folder"):
        target_file(tmp_path, "elsewhere.txt", "target.members")
    with pytest.raises(CheckpointError, match="no file at"):
        target_file(tmp_path, "target/none.txt", "target.members")


# ----- partition around the lists -------------------------------------------------------------


def test_lists_equal_to_the_target_parts_reproduce_the_partition() -> None:
    labels = np.repeat(np.arange(3), 20)
    normal = make_partition(labels, SIZES, seed=7)
    given = given_target_partition(
        labels, part_ids(normal, "target_in"), part_ids(normal, "target_out"), SIZES, seed=7
    )
    assert given.equals(normal)


def test_other_parts_come_only_from_samples_in_neither_list() -> None:
    labels = np.repeat(np.arange(2), 30)
    rng = np.random.default_rng(0)
    ids = rng.permutation(60)
    members, nonmembers = ids[:20], ids[20:35]
    frame = given_target_partition(labels, members, nonmembers, SIZES, seed=1)
    assert set(part_ids(frame, "target_in")) <= set(members)
    assert set(part_ids(frame, "target_out")) <= set(nonmembers)
    others = np.concatenate([part_ids(frame, p) for p in ("shadow_in", "shadow_out", "distill")])
    assert not set(others) & (set(members) | set(nonmembers))
    assert frame["sample_id"].is_unique
    assert (
        frame.groupby(["role", "label"], observed=True).size() == [3, 3, 3, 3, 2, 2, 2, 2, 4, 4]
    ).all()


def test_too_few_samples_outside_the_lists_are_refused_with_counts() -> None:
    labels = np.repeat(np.arange(2), 12)
    members = np.concatenate([np.arange(0, 3), np.arange(12, 15)])
    nonmembers = np.concatenate([np.arange(3, 6), np.arange(15, 21)])
    with pytest.raises(
        PartitionError, match=r"class 0 has 6 samples in neither list .*needs 8 .*shadow_in=2"
    ):
        given_target_partition(labels, members, nonmembers, SIZES, seed=0)
    with pytest.raises(PartitionError, match=r"class 1 has 0 of the target's members"):
        given_target_partition(labels, np.array([0, 1, 2]), np.array([3, 4, 5]), SIZES, seed=0)


def test_total_unit_stratifies_each_pool() -> None:
    labels = np.array([0] * 40 + [1] * 20)
    members = np.concatenate([np.arange(0, 10), np.arange(40, 45)])
    nonmembers = np.concatenate([np.arange(10, 20), np.arange(45, 50)])
    sizes = {"target_in": 15, "target_out": 9, "shadow_in": 6, "shadow_out": 6, "distill": 6}
    frame = given_target_partition(labels, members, nonmembers, sizes, seed=0, unit="total")
    assert frame["role"].value_counts().to_dict() == {
        "target_in": 15,
        "target_out": 9,
        "shadow_in": 6,
        "shadow_out": 6,
        "distill": 6,
    }
    with pytest.raises(PartitionError, match="target.nonmembers"):
        given_target_partition(labels, members, nonmembers, {**sizes, "target_out": 16}, 0, "total")


# ----- preprocessing --------------------------------------------------------------------------


def test_default_preprocessing_is_the_pipelines_own() -> None:
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    mean, std = x.mean(0) / 255.0, x.std(0) / 255.0 + 0.1
    assert torch.equal(preprocess(x, Preprocessing(), mean, std), to_model_input(x, mean, std))
    features = np.random.default_rng(1).random((3, 5)).astype(np.float32)
    out = preprocess(features, Preprocessing(mean=(0.5,), std=(2.0,)), None, None)
    assert torch.allclose(out, torch.from_numpy((features - 0.5) / 2.0))


def test_channels_resize_and_per_channel_normalisation() -> None:
    x = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    x[..., 0] = 255  # pure red
    grey = preprocess(x, Preprocessing(mean=(0.0,), std=(1.0,), channels=1), None, None)
    assert grey.shape == (2, 1, 4, 4) and torch.allclose(grey, torch.full_like(grey, 0.299))
    big = preprocess(x, Preprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (8, 6)), None, None)
    assert big.shape == (2, 3, 8, 6)
    assert torch.allclose(big[:, 0], torch.ones(2, 8, 6)) and torch.allclose(big[:, 1], -big[:, 0])
    rgb = preprocess(x[..., :1], Preprocessing((0.0,), (1.0,), channels=3), None, None)
    assert rgb.shape == (2, 3, 4, 4)
    with pytest.raises(CheckpointError, match="give the target's per-channel target.mean"):
        preprocess(x, Preprocessing(resize=(8, 8)), x.mean(0), x.std(0))
    with pytest.raises(CheckpointError, match="target.mean has 2 values but .* 3 channels"):
        preprocess(x, Preprocessing((0.1, 0.2), (1.0, 1.0)), None, None)


# ----- loading --------------------------------------------------------------------------------


def test_state_dict_loads_weights_only_and_answers_like_the_model(tmp_path: Path) -> None:
    model = small_cnn(1)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = load_target(path, lambda: small_cnn(2), "small_cnn", torch.device("cpu"))
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(target_logits(loaded, x), target_logits(model, x))


def test_architecture_mismatch_names_expected_and_found_shapes(tmp_path: Path) -> None:
    options = ModelOptions(mlp_widths=(32,), mlp_activation="tanh", wrn_depth=16, wrn_width=4)
    other = build_model("mlp", (64,), 10, torch.Generator().manual_seed(0), options)
    path = tmp_path / "model.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_target(path, small_cnn, "small_cnn", torch.device("cpu"))
    message = str(err.value)
    assert "does not fit small_cnn" in message and "expected (" in message
    assert "missing" in message or "found (" in message
    assert "\n" not in message
    state = small_cnn().state_dict()
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(*state[key].shape[:-1], 5)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"{key} expected \(.*, 3\), found \(.*, 5\)"):
        load_target(path, small_cnn, "small_cnn", torch.device("cpu"))


def test_checkpoints_that_do_not_load_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="does not load as a weights-only state dict"):
        load_target(garbage, small_cnn, "small_cnn", torch.device("cpu"))
    pickled = tmp_path / "whole.pt"
    torch.save(small_cnn(), pickled)  # a whole pickled module: code, not weights
    with pytest.raises(CheckpointError, match="weights-only"):
        load_target(pickled, small_cnn, "small_cnn", torch.device("cpu"))
    bad_export = tmp_path / "model.pt2"
    bad_export.write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="does not load as a torch.export program"):
        load_target(bad_export, small_cnn, "small_cnn", torch.device("cpu"), run_exported_code=True)


def test_exported_program_answers_like_the_model(tmp_path: Path) -> None:
    model = small_cnn(3)
    x = torch.randn(4, 1, 8, 8)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    loaded = load_target(path, small_cnn, "ignored", torch.device("cpu"), run_exported_code=True)
    assert isinstance(loaded, ExportedTarget)
    y = torch.randn(7, 1, 8, 8)
    assert torch.allclose(target_logits(loaded, y, batch_size=3), target_logits(model, y))


def test_factory_imports_the_users_module(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "net.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Flatten(), "
        "torch.nn.Linear(64, 10))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    build = load_factory("userpkg.net:build")
    assert isinstance(build(), torch.nn.Sequential)
    with pytest.raises(CheckpointError, match="package.module:factory"):
        load_factory("userpkg.net")
    with pytest.raises(CheckpointError, match="does not import"):
        load_factory("userpkg.net:nothing")
    sys.modules.pop("userpkg.net", None)


# ----- params ---------------------------------------------------------------------------------


def test_checkpoint_source_needs_its_files_and_paired_normalisation() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params_from_dict(raw).target.source == "train"
    bad = copy.deepcopy(raw)
    bad["target"]["source"] = "checkpoint"
    with pytest.raises(ParamsError, match="'target.checkpoint' is empty"):
        params_from_dict(bad)
    bad = copy.deepcopy(raw)
    bad["target"].update(mean=[0.5, 0.5, 0.5], std=[0.5])
    with pytest.raises(ParamsError, match="same length"):
        params_from_dict(bad)
    bad = copy.deepcopy(raw)
    bad["target"]["channels"] = 2
    with pytest.raises(ParamsError, match="target.channels"):
        params_from_dict(bad)


# ----- what the stages call on a loaded target ------------------------------------------------


def tiny_dataset(n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "x": rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8),
        "y": np.arange(n) % 10,
        "classes": np.array([str(c) for c in range(10)]),
        "mean": np.full((8, 8, 1), 0.5, np.float32),
        "std": np.full((8, 8, 1), 0.25, np.float32),
    }


def test_describe_builder_names_what_builds_the_target() -> None:
    assert describe_builder("model.pt2", "pkg.mod:make", "small_cnn") == "exported program"
    assert describe_builder("model.pt", "pkg.mod:make", "small_cnn") == "pkg.mod:make"
    assert describe_builder("model.pt", "", "small_cnn") == "small_cnn"


def test_target_input_is_the_rows_preprocessed() -> None:
    dataset = tiny_dataset()
    got = target_input(dataset, np.array([4, 1]), Preprocessing())
    expected = to_model_input(dataset["x"][[4, 1]], dataset["mean"], dataset["std"])
    assert torch.equal(got, expected)


def test_trial_query_refuses_a_target_with_other_classes_or_input() -> None:
    dataset = tiny_dataset()
    check_target_runs(small_cnn(), dataset, np.array([0, 1]), Preprocessing())
    five = build_model("small_cnn", (1, 8, 8), 5, torch.Generator().manual_seed(0)).eval()
    with pytest.raises(CheckpointError, match=r"outputs of shape \(5,\) .* 10 classes"):
        check_target_runs(five, dataset, np.array([0, 1]), Preprocessing())
    rgb = build_model("small_cnn", (3, 8, 8), 10, torch.Generator().manual_seed(0)).eval()
    with pytest.raises(CheckpointError, match="does not run on the preprocessed input"):
        check_target_runs(rgb, dataset, np.array([0, 1]), Preprocessing())


def test_target_record_reports_accuracy_on_members_and_nonmembers(tmp_path: Path) -> None:
    dataset = tiny_dataset()
    model = small_cnn()
    inputs = to_model_input(dataset["x"], dataset["mean"], dataset["std"])
    predicted = model(inputs).argmax(dim=1).numpy()
    dataset["y"] = np.where(np.arange(6) < 3, predicted, (predicted + 1) % 10)  # 3 right, 3 wrong
    dataset["y"][4] = predicted[4]  # one non-member right
    partition = pd.DataFrame(
        {"sample_id": [0, 1, 2, 3, 4, 5], "role": ["target_in"] * 3 + ["target_out"] * 3}
    )
    (tmp_path / "c.pt").write_bytes(b"abc")
    report = target_record(
        model,
        dataset,
        partition,
        Preprocessing(),
        "small_cnn",
        {"checkpoint": tmp_path / "c.pt"},
        "target/c.pt",
        "",
    )
    assert report["train_accuracy"] == 1.0
    assert report["test_accuracy"] == pytest.approx(1 / 3)
    assert report["train_samples"] == 3 and report["model"] == "small_cnn"
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["sha256"]["checkpoint"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    )
    assert report["preprocessing"] == {"mean": (), "std": (), "resize": (), "channels": 0}
