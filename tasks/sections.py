"""A stage's params sections turned into the core's own values, once, where a task starts: the
core takes an ``Architecture``, a ``Recipe``, ``FitOptions`` or a ``GivenTarget``, never a
params section (``lint-imports`` checks it).

Each function reads exactly the keys its value needs, so the params-reads record of a stage
(tests/test_pipeline.py) shows what the stage really uses."""

from __future__ import annotations

from pathlib import Path

import torch

from seqmia.base.runtime import resolve_precision
from seqmia.models.registry import Architecture, architecture_of
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import GivenTarget, Preprocessing
from seqmia.target.files import target_file
from seqmia.training.loop import FitOptions
from seqmia.training.recipe import Recipe, as_recipe


def architecture(train: TrainParams) -> Architecture:
    """``train.model`` with its options (``train.mlp_*``, ``train.wrn_*``)."""
    return architecture_of(train, train.model)


def recipe(train: TrainParams, epochs: int | None = None) -> Recipe:
    """The optimisation recipe of ``train.*``, optionally with another epoch count (the
    distillation's, which then never reads ``train.epochs``)."""
    return as_recipe(train, **({} if epochs is None else {"epochs": epochs}))


def fit_options(train: TrainParams, device: torch.device) -> FitOptions:
    """``train.augment`` and ``train.precision`` resolved for ``device``."""
    return FitOptions(train.augment, resolve_precision(train.precision, device))


def preprocessing(target: TargetParams) -> Preprocessing:
    """The input preprocessing a given target expects (``target.mean/std/resize/channels``)."""
    return Preprocessing(target.mean, target.std, target.resize, target.channels)


def given_target(target: TargetParams, train: TrainParams, root: Path) -> GivenTarget:
    """The target of ``target.*`` (its files under the repository ``root``, checked to lie in
    its target/ folder), built as ``train.model`` unless it has a factory."""
    return GivenTarget(
        checkpoint=target_file(root, target.checkpoint, "target.checkpoint"),
        factory=target.factory,
        architecture=architecture(train),
        preprocessing=preprocessing(target),
        run_exported_code=target.run_code_in_exported_program,
    )
