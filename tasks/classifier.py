"""A fresh ``train.model`` trained with the ``train.*`` recipe, for stages that train one
besides the target and shadow (the reference models)."""

from __future__ import annotations

import time

import numpy as np
import torch

from seqmia import training
from seqmia.classifier import new_model
from seqmia.data.inputs import input_shape, num_classes
from seqmia.params.train import TrainParams
from seqmia.training import epoch_logger, fit_options, recipe_from
from tasks.common import record_timing
from tasks.stopping import stop_requested


def train_classifier(
    train_params: TrainParams,
    dataset: dict[str, np.ndarray],
    train: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
    device: torch.device,
    logger,
    label: str,
) -> tuple[torch.nn.Module, dict]:
    """``seqmia.training.train_classifier`` of a fresh ``train.model`` with the ``train.*``
    recipe, logged under ``label``; the report names the model first."""
    shape, classes = input_shape(dataset["x"]), num_classes(dataset)
    model = new_model(train_params, shape, classes, generator).to(device)
    x, y = train
    started = time.perf_counter()
    model, report = training.train_classifier(
        model, (x.to(device), y.to(device)), held_out, recipe_from(train_params),
        generator, epoch_logger(logger, f"{label} train", train_params.epochs), stop_requested,
        **fit_options(train_params, device),
    )  # fmt: skip
    record_timing(f"{label} train", time.perf_counter() - started)
    return model, {"model": train_params.model, **report}
