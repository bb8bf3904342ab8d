"""The whole params schema in one namespace (``seqmia.params.*``), for code that reads every
section: reports, sweeps, presets, tests.

A stage imports the section modules it reads (``seqmia.params.train`` …) instead, so that a
rule added for one section does not change the code every stage depends on.
"""

from __future__ import annotations

from seqmia.attacks.seqmia.metric_registry import METRICS
from seqmia.data.registry import DATASETS, FEATURE_DATASETS, KNOWN_CLASS_COUNTS
from seqmia.models.registry import IMAGE_MODELS, MODELS
from seqmia.params.attack import AttackParams
from seqmia.params.baselines import BASELINE_NAMES, RECIPE_KEYS, BaselinesParams
from seqmia.params.data import DataParams
from seqmia.params.distill import DistillParams
from seqmia.params.evaluate import EvaluateParams
from seqmia.params.partition import PARTS, ROLES, PartitionParams
from seqmia.params.reference import ReferenceParams
from seqmia.params.rmia import RmiaParams
from seqmia.params.schema import ParamsError, StageParams, stage_params
from seqmia.params.sequences import MetricName, SequencesParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.params.whole import Params, load_params, params_from_dict, params_to_dict
from seqmia.training.recipe import Recipe

METRIC_NAMES = tuple(METRICS)
MODEL_NAMES = tuple(MODELS)
DATASET_NAMES = tuple(DATASETS)
RecipeParams = Recipe  # the former name of a baselines recipe section

__all__ = [
    "BASELINE_NAMES", "DATASET_NAMES", "FEATURE_DATASETS", "IMAGE_MODELS", "KNOWN_CLASS_COUNTS",
    "METRIC_NAMES", "MODEL_NAMES", "PARTS", "RECIPE_KEYS", "ROLES", "AttackParams",
    "BaselinesParams", "DataParams", "DistillParams", "EvaluateParams", "MetricName", "Params",
    "ParamsError", "PartitionParams", "Recipe", "RecipeParams", "ReferenceParams", "RmiaParams",
    "SequencesParams", "StageParams", "TargetParams", "TrainParams", "load_params",
    "params_from_dict", "params_to_dict", "stage_params",
]  # fmt: skip
