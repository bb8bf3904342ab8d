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
from seqmia.params.dp import DpParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.checkpoint import GivenTarget, Preprocessing
from seqmia.target.files import target_file
from seqmia.training.loop import FitOptions
from seqmia.training.private import PrivacyRequest, PrivatePlan, plan_private_training
from seqmia.training.recipe import Recipe, as_recipe


def architecture(train: TrainParams, dp: DpParams) -> Architecture:
    """``train.model`` with its options (``train.mlp_*``, ``train.wrn_*``), adapted for DP-SGD
    when ``dp.enabled`` (every classifier of such a run, students too, has the same layers)."""
    return architecture_of(train, train.model, dp.enabled)


def recipe(train: TrainParams, epochs: int | None = None) -> Recipe:
    """The optimisation recipe of ``train.*``, optionally with another epoch count (the
    distillation's, which then never reads ``train.epochs``)."""
    return as_recipe(train, **({} if epochs is None else {"epochs": epochs}))


def fit_options(
    train: TrainParams, device: torch.device, private: PrivatePlan | None = None
) -> FitOptions:
    """``train.augment`` and ``train.precision`` resolved for ``device`` (float32 under DP-SGD,
    whose per-sample gradients are clipped in float32), and the ``private`` plan if any."""
    if private is not None and train.precision == "auto":
        return FitOptions(train.augment, "fp32", private)
    return FitOptions(train.augment, resolve_precision(train.precision, device), private)


def private_plan(dp: DpParams, train: TrainParams, samples: int) -> PrivatePlan | None:
    """The DP-SGD plan (``dp.*``) of a model trained with ``train.*`` on ``samples`` samples,
    or None when ``dp.enabled`` is false."""
    if not dp.enabled:
        return None
    request = PrivacyRequest(dp.epsilon, dp.noise_multiplier, dp.max_grad_norm, dp.delta)
    return plan_private_training(request, samples, train.batch_size, train.epochs)


def preprocessing(target: TargetParams) -> Preprocessing:
    """The input preprocessing a given target expects (``target.mean/std/resize/channels``)."""
    return Preprocessing(target.mean, target.std, target.resize, target.channels)


def given_target(target: TargetParams, train: TrainParams, root: Path) -> GivenTarget:
    """The target of ``target.*`` (its files under the repository ``root``, checked to lie in
    its target/ folder), built as ``train.model`` unless it has a factory."""
    return GivenTarget(
        checkpoint=target_file(root, target.checkpoint, "target.checkpoint"),
        factory=target.factory,
        architecture=architecture_of(train, train.model),
        preprocessing=preprocessing(target),
        run_exported_code=target.run_code_in_exported_program,
    )
