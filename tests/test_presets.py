"""Presets are valid params overrides; the suite's table reads dvc exp show --json output."""

from __future__ import annotations

import copy

import pytest
import yaml

from seqmia.config import ParamsError
from seqmia.params.presets import (
    PRESETS_DIR,
    apply_overrides,
    check_preset,
    load_preset,
    markdown_table,
    metrics_by_experiment,
    set_arguments,
)
from tests.conftest import REPO

RAW = yaml.safe_load((REPO / "params.yaml").read_text())
PRESETS = sorted(p.stem for p in (REPO / PRESETS_DIR).glob("*.yaml"))


def test_presets_cover_every_named_dataset():
    names = {load_preset(p, REPO / PRESETS_DIR).get("data.name") for p in PRESETS}
    assert {"cifar10", "cifar100", "cinic10", "gtsrb", "mnist", "fashion_mnist", "location",
            "purchase100", "texas100", "news20"} <= names  # fmt: skip


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_validates(preset):
    params = check_preset(RAW, load_preset(preset, REPO / PRESETS_DIR))
    if preset.endswith("-cpu"):
        assert params.device == "cpu"


def test_unknown_preset_key_refused():
    with pytest.raises(ParamsError, match="train.modle"):
        apply_overrides(RAW, {"train.modle": "mlp"})
    with pytest.raises(ParamsError, match="no section"):
        apply_overrides(RAW, {"trian.model": "mlp"})


def test_overrides_leave_the_original_alone():
    before = copy.deepcopy(RAW)
    out = apply_overrides(RAW, {"train.model": "mlp", "seed": 3})
    assert out["train"]["model"] == "mlp" and out["seed"] == 3
    assert RAW == before


def test_missing_preset_lists_known(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    with pytest.raises(ParamsError, match=r"\['a'\]"):
        load_preset("b", tmp_path)


def test_set_arguments_yaml_values():
    args = set_arguments({"train.mlp_widths": [64, 32], "data.name": "location",
                          "data.download": False, "train.lr": 0.05})  # fmt: skip
    assert args == ["-S", "train.mlp_widths=[64, 32]", "-S", "data.name=location",
                    "-S", "data.download=false", "-S", "train.lr=0.05"]  # fmt: skip


METRICS = {
    "attacks": {
        "seqmia": {"auc": 0.71, "tpr_at_fpr": {"0.001": 0.02, "0.01": 0.05}, "n_members": 800},
        "loss": {"auc": 0.69, "tpr_at_fpr": {"0.001": 0.0, "0.01": 0.01}},
        "max_confidence": {"auc": 0.68, "tpr_at_fpr": {"0.001": 0.0}},
    },
    "models": {"target": {"train_accuracy": 1.0, "test_accuracy": 0.58}},
}
# The shape of ``dvc exp show --json`` (DVC 3): baseline records with nested experiments.
EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": {"metrics": {}}, "experiments": None},
    {"rev": "abc", "name": "main", "data": {"metrics": {}}, "experiments": [
        {"revs": [{"rev": "d1", "name": "location-cpu-1",
                   "data": {"metrics": {"eval/metrics.json": {"data": METRICS}}}}]},
        {"revs": [{"rev": "d2", "name": "news20-cpu-1", "data": {"metrics": {}}}]},
    ]},
]  # fmt: skip


def test_metrics_by_experiment_and_table():
    found = metrics_by_experiment(EXP_SHOW, ["location-cpu-1", "news20-cpu-1", "gone"])
    assert found == {"location-cpu-1": METRICS, "news20-cpu-1": None, "gone": None}
    table = markdown_table({"location-cpu": found["location-cpu-1"], "news20-cpu": None})
    lines = table.strip().splitlines()
    assert lines[0].startswith("| preset | target train acc | target test acc | SeqMIA AUC")
    # SeqMIA's three columns, TrajectoryMIA's (absent here: "-"), then the loss baseline's.
    assert lines[2].startswith(
        "| location-cpu | 1.000 | 0.580 | 0.710 | 0.0200 | 0.0500 | - | - | - | 0.690 | 0.0000"
    )
    assert "| 800 |" in lines[2]
    assert lines[3].startswith("| news20-cpu | failed |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_parse_sweep_reads_yaml_values_and_refuses_malformed_text():
    from seqmia.params.presets import parse_sweep

    assert parse_sweep("distill.epochs=5,10,20") == ("distill.epochs", [5, 10, 20])
    assert parse_sweep("attack.architecture=lstm,mlp") == ("attack.architecture", ["lstm", "mlp"])
    assert parse_sweep("sequences.metrics=[loss],[loss,sd]") == (
        "sequences.metrics", [["loss"], ["loss", "sd"]],
    )  # fmt: skip
    with pytest.raises(ParamsError, match="KEY=V1"):
        parse_sweep("distill.epochs")


def test_mean_sd_table_over_seeds_skips_failed_runs():
    from seqmia.params.presets import mean_sd_table

    def run(auc: float) -> dict:
        return {"attacks": {"seqmia": {"auc": auc, "tpr_at_fpr": {"0.001": 0.1, "0.01": 0.3}}}}

    table = mean_sd_table({0: run(0.8), 1: run(0.9), 2: None})
    assert "| seqmia | 0.8500 ± 0.0707 | 0.1000 ± 0.0000 | 0.3000 ± 0.0000 |" in table
    assert "2 runs, 1 failed" in table


def test_plot_sweep_writes_a_png(tmp_path):
    from seqmia.params.presets import plot_sweep

    out = tmp_path / "sweep.png"
    plot_sweep("distill.epochs", [5, 10], {"seqmia": [0.1, 0.2], "loss": [0.0, None]}, out, "TPR")
    assert out.read_bytes()[:4] == b"\x89PNG"
