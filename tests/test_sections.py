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
    assert sections.architecture(train) == Architecture(
        "mlp",
        ModelOptions(
            mlp_widths=(16, 8),
            mlp_activation=train.mlp_activation,
            wrn_depth=train.wrn_depth,
            wrn_width=3,
        ),
    )
    assert type(sections.architecture(train).options) is ModelOptions  # not the params section


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
        architecture=sections.architecture(PARAMS.train),
        preprocessing=Preprocessing((0.5,), (0.25,), (16, 16), 1),
        run_exported_code=False,
    )
    with pytest.raises(CheckpointError, match="outside the target/ folder"):
        sections.given_target(
            dataclasses.replace(target, checkpoint="model.pt"), PARAMS.train, tmp_path
        )
