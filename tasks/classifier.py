"""A fresh ``train.model`` trained with the ``train.*`` recipe, for stages that train one
besides the target and shadow (the reference models)."""

from __future__ import annotations

import time

import numpy as np
import torch

from seqmia import training
from seqmia.params.schema import StageParams as Params
from seqmia.training import epoch_logger, fit_options, recipe_from
from tasks.common import record_timing
from tasks.models import new_model
from tasks.stopping import stop_requested


def train_classifier(
    params: Params,
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
    model = new_model(params, dataset, generator).to(device)
    x, y = train
    started = time.perf_counter()
    model, report = training.train_classifier(
        model, (x.to(device), y.to(device)), held_out, recipe_from(params.train),
        generator, epoch_logger(logger, f"{label} train", params.train.epochs), stop_requested,
        **fit_options(params.train, device),
    )  # fmt: skip
    record_timing(f"{label} train", time.perf_counter() - started)
    return model, {"model": params.train.model, **report}
