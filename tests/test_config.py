"""Validation of params.yaml by seqmia.config."""

from __future__ import annotations

import copy
import typing
from pathlib import Path

import pytest
import yaml

from seqmia.config import (
    DATASET_NAMES,
    METRIC_NAMES,
    MODEL_NAMES,
    DataParams,
    MetricName,
    Params,
    ParamsError,
    TrainParams,
    load_params,
    params_from_dict,
    params_to_dict,
)
from seqmia.errors import UserError
from seqmia.metrics import METRICS
from seqmia.models import MODEL_REGISTRY

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"
TRAIN_KEYS = [
    "model",
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


def test_model_literal_matches_registry():
    hints = typing.get_type_hints(TrainParams)
    assert set(typing.get_args(hints["model"])) == set(MODEL_REGISTRY)
    assert set(MODEL_NAMES) == set(MODEL_REGISTRY)


def test_metric_names_match_metric_functions():
    assert tuple(METRICS) == METRIC_NAMES
    assert typing.get_args(MetricName) == METRIC_NAMES


@pytest.mark.parametrize("model", ["small_cnn", "vgg16", "resnet56", "mobilenetv2", "wrn"])
@pytest.mark.parametrize("name", ["location", "news20"])
def test_cnn_on_feature_dataset_refused(raw, model, name):
    raw["data"]["name"] = name
    raw["train"]["model"] = model
    message = _error(raw)
    assert "train.model" in message and name in message and "mlp" in message


def test_mlp_on_feature_dataset_accepted(raw):
    raw["data"]["name"] = "location"
    raw["train"]["model"] = "mlp"
    raw["partition"]["unit"] = "total"
    params = params_from_dict(raw)
    assert params.train.mlp_widths == (1024, 512, 256, 128)
    assert params.partition.unit == "total"


def test_augment_on_feature_dataset_refused(raw):
    raw["data"]["name"] = "purchase100"
    raw["train"].update(model="mlp", augment=True)
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


def test_dataset_literal_matches_names():
    hints = typing.get_type_hints(DataParams)
    assert typing.get_args(hints["name"]) == DATASET_NAMES


def test_reference_models_must_be_at_least_one(raw):
    raw["reference"]["models"] = 0
    assert "reference.models" in _error(raw) and ">= 1" in _error(raw)


def test_reference_draws_must_leave_part_of_the_shadow_pool_out(raw):
    raw["partition"].update(target_in=500, shadow_in=250, shadow_out=250)
    message = _error(raw)
    assert "partition.target_in" in message and "less than" in message
