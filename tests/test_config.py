"""Validation of params.yaml by seqmia.params (the schema, the sections, the whole file)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from seqmia.attacks.architectures import ATTACKS
from seqmia.attacks.registry import TRAINED
from seqmia.attacks.seqmia.metric_registry import METRICS
from seqmia.base.errors import UserError
from seqmia.data.sources import DATASETS
from seqmia.models.registry import MODELS
from seqmia.params.baselines import BaselinesParams
from seqmia.params.schema import ParamsError
from seqmia.params.whole import Params, load_params, params_from_dict, params_to_dict

METRIC_NAMES = tuple(METRICS)
MODEL_NAMES = tuple(MODELS)
PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"
TRAIN_KEYS = [
    "model",
    "optimizer",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "step_size",
    "gamma",
    "min_lr",
    "augment",
    "mlp_widths",
    "mlp_activation",
    "wrn_depth",
    "wrn_width",
]


@pytest.fixture(scope="module")
def raw_params() -> dict:
    with PARAMS_FILE.open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def raw(raw_params: dict) -> dict:
    """A deep copy of the repository's params.yaml, free to mutate."""
    return copy.deepcopy(raw_params)


def _error(raw: dict) -> str:
    with pytest.raises(ParamsError) as info:
        params_from_dict(raw)
    return str(info.value)


def test_repo_params_file_loads():
    params = load_params(PARAMS_FILE)
    assert isinstance(params, Params)
    assert isinstance(params.sequences.metrics, tuple)
    assert set(params.sequences.metrics) <= set(METRIC_NAMES)
    assert isinstance(params.evaluate.fpr_targets, tuple)
    assert params.train.model in MODEL_NAMES


def test_params_round_trip_through_dict():
    params = load_params(PARAMS_FILE)
    assert params_from_dict(params_to_dict(params)) == params


def test_float_field_accepts_int_and_converts(raw):
    raw["train"]["lr"] = 1
    params = params_from_dict(raw)
    assert params.train.lr == 1.0
    assert isinstance(params.train.lr, float)


def test_bad_params_file_raises_the_error_stages_report_in_one_line(raw, tmp_path):
    # flows/_stage.py turns a UserError into one line and exit code 2.
    raw["train"]["lr"] = "fast"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match="train.lr"):
        load_params(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ParamsError, match="no params file"):
        load_params(tmp_path / "nope.yaml")


def test_unknown_key_names_key_and_allowed_keys(raw):
    raw["train"]["modle"] = "small_cnn"
    message = _error(raw)
    assert "train.modle" in message
    for key in TRAIN_KEYS:
        assert f"'{key}'" in message


def test_unknown_top_level_key(raw):
    raw["sed"] = 1
    message = _error(raw)
    assert "'sed'" in message
    assert "'seed'" in message


def test_missing_key_is_named(raw):
    del raw["attack"]["epochs"]
    assert "attack.epochs" in _error(raw)


def test_wrong_type_names_key(raw):
    raw["attack"]["epochs"] = "ten"
    message = _error(raw)
    assert "attack.epochs" in message
    assert "integer" in message


def test_bad_choice_lists_allowed_values(raw):
    raw["train"]["model"] = "resnet999"
    message = _error(raw)
    assert "train.model" in message
    assert "small_cnn" in message
    assert "vgg16" in message


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_bad_device_refused(raw, device):
    raw["device"] = device
    assert "device" in _error(raw)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_good_device_accepted(raw, device):
    raw["device"] = device
    assert params_from_dict(raw).device == device


@pytest.mark.parametrize(("section", "key"), [(None, "seed"), ("attack", "epochs")])
def test_bool_refused_where_int_expected(raw, section, key):
    (raw if section is None else raw[section])[key] = True
    dotted = key if section is None else f"{section}.{key}"
    assert dotted in _error(raw)


def test_bool_refused_where_float_expected(raw):
    raw["train"]["lr"] = True
    assert "train.lr" in _error(raw)


def test_int_refused_where_bool_expected(raw):
    raw["train"]["augment"] = 1
    assert "train.augment" in _error(raw)


def test_unknown_metric_refused(raw):
    raw["sequences"]["metrics"] = ["loss", "confidence"]
    message = _error(raw)
    assert "sequences.metrics" in message
    assert "confidence" in message


def test_duplicated_metric_refused(raw):
    raw["sequences"]["metrics"] = ["loss", "max", "loss"]
    assert "sequences.metrics" in _error(raw)


def test_empty_metric_list_refused(raw):
    raw["sequences"]["metrics"] = []
    assert "sequences.metrics" in _error(raw)


def test_metrics_must_be_a_list(raw):
    raw["sequences"]["metrics"] = "loss"
    assert "sequences.metrics" in _error(raw)


def test_range_rule_names_key(raw):
    raw["attack"]["val_fraction"] = 1.0
    assert "attack.val_fraction" in _error(raw)


def test_section_must_be_mapping(raw):
    raw["train"] = ["small_cnn"]
    assert "train" in _error(raw)


# Each registry of names, the key that selects from it, and how to set that key in a document.
REGISTRIES = {
    "train.model": (MODELS, lambda raw, v: raw["train"].update(model=v)),
    "data.name": (DATASETS, lambda raw, v: raw["data"].update(name=v)),
    "sequences.metrics": (METRICS, lambda raw, v: raw["sequences"].update(metrics=[v])),
    "attack.architecture": (ATTACKS, lambda raw, v: raw["attack"].update(architecture=v)),
    "baselines.attacks": (TRAINED, lambda raw, v: raw["baselines"].update(attacks=[v])),
}


@pytest.mark.parametrize("key", REGISTRIES)
def test_unknown_name_fails_with_the_registrys_names(raw, key):
    registry, put = REGISTRIES[key]
    put(raw, "no_such_name")
    message = _error(raw)
    assert key in message and "no_such_name" in message
    assert all(name in message for name in registry)


@pytest.mark.parametrize("key", ["train.model", "sequences.metrics", "attack.architecture"])
def test_a_name_added_to_the_registry_is_accepted(raw, key, monkeypatch):
    """Validation reads the registry itself: no second list to update."""
    registry, put = REGISTRIES[key]
    monkeypatch.setitem(registry, "added_by_test", object())
    put(raw, "added_by_test")
    params = params_from_dict(raw)
    section, field = key.split(".")
    assert "added_by_test" in str(getattr(getattr(params, section), field))


def test_trained_attack_names_come_from_the_attack_registry():
    """``baselines.attacks`` names the registry's shadow-trained attacks, no second list."""
    import typing

    hint = typing.get_type_hints(BaselinesParams, include_extras=True)["attacks"]
    (one_of,) = typing.get_args(typing.get_args(hint)[0])[1:]
    assert one_of.registry is TRAINED


@pytest.mark.parametrize("model", ["small_cnn", "vgg16", "resnet56", "mobilenetv2", "wrn"])
@pytest.mark.parametrize("name", ["location", "news20"])
def test_cnn_on_feature_dataset_refused(raw, model, name):
    raw["data"]["name"] = name
    raw["train"]["model"] = model
    message = _error(raw)
    assert "train.model" in message and name in message and "mlp" in message


def test_cnn_regressor_on_feature_dataset_refused(raw):
    raw["data"]["name"] = "location"
    raw["train"]["model"] = "mlp"
    raw["partition"]["unit"] = "total"
    message = _error(raw)  # the repository's quantile.model is the small CNN
    assert "quantile.model" in message and "location" in message and "mlp" in message


def test_mlp_on_feature_dataset_accepted(raw):
    raw["data"]["name"] = "location"
    raw["train"]["model"] = "mlp"
    raw["quantile"]["model"] = "mlp"
    raw["partition"]["unit"] = "total"
    params = params_from_dict(raw)
    assert params.train.mlp_widths == (1024, 512, 256, 128)
    assert params.partition.unit == "total"


def test_augment_on_feature_dataset_refused(raw):
    raw["data"]["name"] = "purchase100"
    raw["train"].update(model="mlp", augment=True)
    raw["quantile"]["model"] = "mlp"
    assert "train.augment" in _error(raw)


def test_bad_partition_unit_lists_choices(raw):
    raw["partition"]["unit"] = "percent"
    message = _error(raw)
    assert "partition.unit" in message and "per_class" in message and "total" in message


@pytest.mark.parametrize("depth", [15, 18, 4])
def test_bad_wrn_depth_refused(raw, depth):
    raw["train"]["wrn_depth"] = depth
    assert "train.wrn_depth" in _error(raw)


@pytest.mark.parametrize("depth", [16, 28, 32, 40])
def test_good_wrn_depth_accepted(raw, depth):
    raw["train"]["wrn_depth"] = depth
    assert params_from_dict(raw).train.wrn_depth == depth


@pytest.mark.parametrize("widths", [[], [128, 0], "1024"])
def test_bad_mlp_widths_refused(raw, widths):
    raw["train"]["mlp_widths"] = widths
    assert "train.mlp_widths" in _error(raw)


def test_bad_vocab_size_refused(raw):
    raw["data"]["vocab_size"] = 0
    assert "data.vocab_size" in _error(raw)


def test_reference_models_must_be_at_least_one(raw):
    raw["reference"]["models"] = 0
    assert "reference.models" in _error(raw) and ">= 1" in _error(raw)


def test_reference_draws_must_leave_part_of_the_shadow_pool_out(raw):
    raw["partition"].update(target_in=500, shadow_in=250, shadow_out=250)
    message = _error(raw)
    assert "partition.target_in" in message and "less than" in message


@pytest.mark.parametrize("section", ["train", "attack", "baselines.trajectory_mia"])
@pytest.mark.parametrize(
    ("key", "value"), [("optimizer", "rmsprop"), ("schedule", "linear"), ("momentum", 1.0)]
)
def test_every_recipe_section_has_the_recipe_rules(raw, section, key, value):
    node = raw
    for part in section.split("."):
        node = node[part]
    node[key] = value
    assert f"{section}.{key}" in _error(raw)


def test_recipe_sections_are_core_recipes():
    from seqmia.training.recipe import Recipe, as_recipe

    params = load_params(PARAMS_FILE)
    assert as_recipe(params.train) == Recipe(
        optimizer="sgd",
        epochs=params.train.epochs,
        batch_size=params.train.batch_size,
        lr=params.train.lr,
        momentum=params.train.momentum,
        weight_decay=params.train.weight_decay,
        schedule=params.train.schedule,
        step_size=params.train.step_size,
        gamma=params.train.gamma,
        min_lr=params.train.min_lr,
    )
    assert as_recipe(params.baselines.nn_posterior) == params.baselines.nn_posterior


STAGE_SCRIPT = """
import sys
from seqmia.params.schema import stage_params
import seqmia.params.run, seqmia.params.train  # the stage reads seed and train.* only

params = stage_params(sys.argv[1], "train")
print(params.train.lr, params.seed if len(sys.argv) < 3 else params.attack.lr)
"""


def _run_stage_script(tmp_path: Path, env: dict, *args: str):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", STAGE_SCRIPT, str(PARAMS_FILE), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
        timeout=120,
    )


def test_stage_params_record_the_keys_read(tmp_path):
    record = tmp_path / "reads.txt"
    out = _run_stage_script(tmp_path, {"SEQMIA_RECORD_PARAMS": str(record)})
    assert out.returncode == 0, out.stderr
    assert record.read_text().split("\n")[:-1] == ["train train.lr", "train seed"]


def test_reading_a_section_whose_schema_the_stage_does_not_import_fails(tmp_path):
    out = _run_stage_script(tmp_path, {}, "attack")
    assert out.returncode != 0
    assert "params section 'attack'" in out.stderr and "seqmia.params.attack" in out.stderr


def test_recording_view_behaves_like_the_section(tmp_path, monkeypatch):
    import dataclasses

    from seqmia.params.schema import stage_params
    from seqmia.params.train import TrainParams
    from seqmia.training.recipe import as_recipe

    monkeypatch.setenv("SEQMIA_RECORD_PARAMS", str(tmp_path / "reads.txt"))
    view = stage_params(PARAMS_FILE, "x").train
    assert isinstance(view, TrainParams) and not dataclasses.is_dataclass(view)
    assert as_recipe(view) == as_recipe(load_params(PARAMS_FILE).train)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.lr = 1.0


def test_dp_settings_are_refused_when_they_give_no_privacy_or_no_clear_noise(raw):
    raw["dp"].update(enabled=True, epsilon=0.0, noise_multiplier=0.0)
    assert "'dp.epsilon' and 'dp.noise_multiplier' are both 0" in _error(raw)
    raw["dp"].update(epsilon=4.0, noise_multiplier=1.0)
    assert "set one and leave the other 0" in _error(raw)
    raw["dp"].update(noise_multiplier=0.0)
    assert params_from_dict(raw).dp.epsilon == 4.0
    raw["dp"]["max_grad_norm"] = 0.0
    assert "'dp.max_grad_norm'" in _error(raw)


def test_dp_delta_must_be_below_one_over_the_smallest_training_set(raw):
    # CIFAR-10, 250 per class: each DP model trains on N = 2,500 samples, so 1/N = 4e-4.
    raw["dp"].update(enabled=True, epsilon=4.0, delta=4e-4)
    assert "N = 2500 samples and δ must be below 1/N = 0.0004" in _error(raw)
    raw["dp"]["delta"] = 3.9e-4
    params_from_dict(raw)
    raw["partition"].update(unit="total", target_in=100)  # now N = 100
    raw["dp"]["delta"] = 0.01
    assert "N = 100 samples" in _error(raw)
    raw["dp"]["delta"] = 1.0
    assert "'dp.delta'" in _error(raw)  # outside (0, 1) whatever N


def test_dp_refuses_half_precision_and_a_given_target(raw):
    raw["dp"].update(enabled=True, epsilon=4.0)
    raw["train"]["precision"] = "bf16"
    assert "DP-SGD trains in float32" in _error(raw)
    raw["train"]["precision"] = "auto"
    raw["target"].update(source="checkpoint", checkpoint="m.pt", members="in", nonmembers="out")
    assert "a given target's training is not the pipeline's to make private" in _error(raw)
    raw["dp"]["enabled"] = False  # the same target audited without DP is fine
    params_from_dict(raw)
