"""A task turns its params section into the core's values once (tasks/sections.py): the core
never sees a params type, and each value holds exactly what its section says."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seqmia.models.registry import Architecture, ModelOptions
from seqmia.params.whole import load_params
from seqmia.target.checkpoint import GivenTarget, Preprocessing
from seqmia.target.files import CheckpointError
from seqmia.training.loop import FitOptions
from seqmia.training.recipe import RECIPE_FIELDS, Recipe
from tasks import sections
from tests.conftest import REPO

PARAMS = load_params(REPO / "params.yaml")


def test_the_architecture_is_the_model_and_its_options():
    train = dataclasses.replace(PARAMS.train, model="mlp", mlp_widths=(16, 8), wrn_width=3)
    assert sections.architecture(train, PARAMS.dp) == Architecture(
        "mlp",
        ModelOptions(
            mlp_widths=(16, 8),
            mlp_activation=train.mlp_activation,
            wrn_depth=train.wrn_depth,
            wrn_width=3,
        ),
    )
    assert type(sections.architecture(train, PARAMS.dp).options) is ModelOptions  # not params
    private = dataclasses.replace(PARAMS.dp, enabled=True, epsilon=4.0)
    assert sections.architecture(train, private).dp_trainable


def test_the_private_plan_follows_the_dp_section():
    assert sections.private_plan(PARAMS.dp, PARAMS.train, 2500) is None  # off by default
    dp = dataclasses.replace(PARAMS.dp, enabled=True, epsilon=0.0, noise_multiplier=1.3)
    plan = sections.private_plan(dp, PARAMS.train, 2500)
    assert plan.noise_multiplier == 1.3 and plan.target_epsilon is None
    assert plan.sample_rate == PARAMS.train.batch_size / 2500
    assert plan.epochs == PARAMS.train.epochs and plan.delta == dp.delta
    options = sections.fit_options(PARAMS.train, torch.device("cpu"), plan)
    assert options.private == plan and options.precision == "fp32"


def test_the_recipe_is_the_sections_recipe_fields():
    recipe = sections.recipe(PARAMS.train)
    assert type(recipe) is Recipe
    assert all(getattr(recipe, f) == getattr(PARAMS.train, f) for f in RECIPE_FIELDS)
    assert sections.recipe(PARAMS.train, epochs=3) == dataclasses.replace(recipe, epochs=3)


def test_fit_options_resolve_the_precision_for_the_device():
    train = dataclasses.replace(PARAMS.train, augment=True, precision="auto")
    assert sections.fit_options(train, torch.device("cpu")) == FitOptions(True, "fp32")


def test_a_given_target_is_checked_to_lie_in_the_target_folder(tmp_path: Path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "model.pt").write_bytes(b"weights")
    target = dataclasses.replace(
        PARAMS.target,
        source="checkpoint",
        checkpoint="target/model.pt",
        factory="pkg.m:make",
        mean=(0.5,),
        std=(0.25,),
        resize=(16, 16),
        channels=1,
    )
    given = sections.given_target(target, PARAMS.train, tmp_path)
    assert given == GivenTarget(
        checkpoint=(tmp_path / "target" / "model.pt").resolve(),
        factory="pkg.m:make",
        architecture=sections.architecture(PARAMS.train, PARAMS.dp),
        preprocessing=Preprocessing((0.5,), (0.25,), (16, 16), 1),
        run_exported_code=False,
    )
    with pytest.raises(CheckpointError, match="outside the target/ folder"):
        sections.given_target(
            dataclasses.replace(target, checkpoint="model.pt"), PARAMS.train, tmp_path
        )
