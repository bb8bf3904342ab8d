"""Presets are valid params overrides; the suite's table reads dvc exp show --json output."""

from __future__ import annotations

import copy

import pytest
import yaml

from seqmia.audit.tables import experiment_revs, family_heads, markdown_table
from seqmia.data.registry import DATASETS
from seqmia.params.presets import (
    PRESETS_DIR,
    apply_overrides,
    check_preset,
    load_preset,
    set_arguments,
)
from seqmia.params.schema import ParamsError
from tests.conftest import REPO

RAW = yaml.safe_load((REPO / "params.yaml").read_text())
PRESETS = sorted(p.stem for p in (REPO / PRESETS_DIR).glob("*.yaml"))


def published_datasets() -> set[str]:
    """The registry's datasets that name one published set; a dataset that reads a folder the
    user names (``data.path``, e.g. ``imagefolder``) has no data a preset could fix."""
    return {name for name, spec in DATASETS.items() if "path" not in spec.options}


def test_presets_cover_every_named_dataset():
    names = {load_preset(p, REPO / PRESETS_DIR).get("data.name") for p in PRESETS}
    missing = published_datasets() - names
    assert not missing, f"datasets of seqmia.data.registry.DATASETS without a preset: {missing}"
    assert "imagefolder" in DATASETS and "imagefolder" not in published_datasets()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_is_named_after_its_dataset(preset):
    """``<data.name>-<variant>``: the suite's table and ``--presets`` read the dataset off it."""
    name = load_preset(preset, REPO / PRESETS_DIR).get("data.name")
    assert name in DATASETS and preset.startswith(f"{name}-"), (preset, name)


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
    args = set_arguments(
        {
            "train.mlp_widths": [64, 32],
            "data.name": "location",
            "data.download": False,
            "train.lr": 0.05,
        }
    )
    assert args == [
        "-S",
        "train.mlp_widths=[64, 32]",
        "-S",
        "data.name=location",
        "-S",
        "data.download=false",
        "-S",
        "train.lr=0.05",
    ]


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
    {
        "rev": "abc",
        "name": "main",
        "data": {"metrics": {}},
        "experiments": [
            {
                "revs": [
                    {
                        "rev": "d1",
                        "name": "location-cpu-1",
                        "data": {"metrics": {"eval/headline.json": {"data": {"auc": 0.7}}}},
                    }
                ]
            },
            {"revs": [{"rev": "d2", "name": "news20-cpu-1", "data": {"metrics": {}}}]},
        ],
    },
]


def test_experiment_revs_and_table():
    found = experiment_revs(EXP_SHOW, ["location-cpu-1", "news20-cpu-1", "gone"])
    assert found == {"location-cpu-1": "d1", "news20-cpu-1": None, "gone": None}
    table = markdown_table({"location-cpu": METRICS, "news20-cpu": None})
    lines = table.strip().splitlines()
    assert lines[0].startswith("| preset | target train acc | target test acc | seqmia AUC")
    # Three columns per family of the registry: SeqMIA's, then those of the first attack of each
    # other family (absent here but the loss attack's: "-"), the loss attack's last.
    heads = ["seqmia", "trajectory_mia", "nn_posterior", "lira_offline", "quantile_mia", "loss"]
    assert family_heads() == heads
    seqmia, loss = "| 0.710 | 0.0200 | 0.0500 |", " 0.690 | 0.0000"
    assert lines[2].startswith("| location-cpu | 1.000 | 0.580 " + seqmia + " - |" * 12 + loss)
    assert "| 800 |" in lines[2]
    assert lines[3].startswith("| news20-cpu | failed |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_parse_sweep_reads_yaml_values_and_refuses_malformed_text():
    from seqmia.params.presets import parse_sweep

    assert parse_sweep("distill.epochs=5,10,20") == ("distill.epochs", [5, 10, 20])
    assert parse_sweep("attack.architecture=lstm,mlp") == ("attack.architecture", ["lstm", "mlp"])
    assert parse_sweep("sequences.metrics=[loss],[loss,sd]") == (
        "sequences.metrics",
        [["loss"], ["loss", "sd"]],
    )
    with pytest.raises(ParamsError, match="KEY=V1"):
        parse_sweep("distill.epochs")


def test_mean_sd_table_over_seeds_skips_failed_runs():
    from seqmia.audit.tables import mean_sd_table

    def run(auc: float) -> dict:
        return {"attacks": {"seqmia": {"auc": auc, "tpr_at_fpr": {"0.001": 0.1, "0.01": 0.3}}}}

    table = mean_sd_table({0: run(0.8), 1: run(0.9), 2: None})
    assert "| seqmia | 0.8500 ± 0.0707 | 0.1000 ± 0.0000 | 0.3000 ± 0.0000 |" in table
    assert "2 runs, 1 failed" in table


def test_sweep_figure_draws_one_line_per_attack_without_failed_points():
    import matplotlib.pyplot as plt

    from seqmia.audit.tables import sweep_figure

    fig = sweep_figure(
        "distill.epochs", [5, 10, 20], {"seqmia": [0.1, 0.2, 0.3], "loss": [0.0, None, 0.05]}, "TPR"
    )
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"seqmia", "loss"}
    assert list(lines["seqmia"].get_xdata()) == [5, 10, 20]
    assert list(lines["seqmia"].get_ydata()) == [0.1, 0.2, 0.3]
    # The failed run (None) leaves no point: the loss line joins 5 and 20 only.
    assert list(lines["loss"].get_xdata()) == [5, 20]
    assert list(lines["loss"].get_ydata()) == [0.0, 0.05]
    assert lines["seqmia"].get_linewidth() > lines["loss"].get_linewidth()  # the headline
    assert ax.get_xlabel() == "distill.epochs" and ax.get_ylabel() == "TPR"
    plt.close(fig)


def test_sweep_figure_places_categories_evenly():
    import matplotlib.pyplot as plt

    from seqmia.audit.tables import sweep_figure

    fig = sweep_figure("model.name", ["small_cnn", "resnet18"], {"seqmia": [0.4, 0.6]}, "AUC")
    ax = fig.axes[0]
    assert list(ax.get_lines()[0].get_xdata()) == [0, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["small_cnn", "resnet18"]
    plt.close(fig)


def test_plot_sweep_writes_a_png_image(tmp_path):
    import matplotlib.image

    from seqmia.audit.tables import plot_sweep

    out = tmp_path / "sweep.png"
    plot_sweep("distill.epochs", [5, 10], {"seqmia": [0.1, 0.2], "loss": [0.0, None]}, out, "TPR")
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100  # a decodable image, not only a header
