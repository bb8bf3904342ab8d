"""Model-side helpers of the train, distill and sequences tasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqmia.artifacts import load_state_dict
from seqmia.config import Params, TrainParams
from seqmia.data import input_shape as sample_shape
from seqmia.data import to_model_input
from seqmia.models import ModelOptions, build_model
from seqmia.partition import part_ids
from seqmia.seeding import make_generator
from seqmia.training import Recipe


def part_tensors(
    dataset: dict[str, np.ndarray], partition: pd.DataFrame, part: str
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Sample ids (n,), normalised inputs (n, C, H, W) or (n, D) and labels (n,) of one part."""
    ids = part_ids(partition, part)
    x = to_model_input(dataset["x"][ids], dataset["mean"], dataset["std"])
    y = torch.from_numpy(dataset["y"][ids].astype(np.int64))
    return ids, x, y


def input_shape(dataset: dict[str, np.ndarray]) -> tuple[int, ...]:
    """(C, H, W) of the prepared images, (D,) of prepared feature vectors."""
    return sample_shape(dataset["x"])


def num_classes(dataset: dict[str, np.ndarray]) -> int:
    """Number of classes of the prepared dataset."""
    return len(dataset["classes"])


def new_model(params: Params, dataset: dict[str, np.ndarray], generator: torch.Generator):
    """A freshly initialised ``train.model`` (with its ``train.*`` options) for this dataset."""
    train = params.train
    options = ModelOptions(
        mlp_widths=train.mlp_widths,
        mlp_activation=train.mlp_activation,
        wrn_depth=train.wrn_depth,
        wrn_width=train.wrn_width,
    )
    return build_model(train.model, input_shape(dataset), num_classes(dataset), generator, options)


def load_model(
    params: Params, dataset: dict[str, np.ndarray], path: Path, device: torch.device
) -> torch.nn.Module:
    """``train.model`` with the weights saved at ``path`` (weights only), in eval mode."""
    model = new_model(params, dataset, make_generator(0, "load"))
    model.load_state_dict(load_state_dict(path))
    return model.to(device).eval()


def recipe_from(train: TrainParams, epochs: int | None = None) -> Recipe:
    """The optimisation recipe of ``train.*``, optionally with another epoch count."""
    return Recipe(
        epochs=train.epochs if epochs is None else epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        schedule=train.schedule,
        step_size=train.step_size,
        gamma=train.gamma,
        min_lr=train.min_lr,
        augment=train.augment,
    )


def epoch_logger(logger, label: str, total: int):
    """``on_epoch`` callback that logs loss, accuracy, rate and throughput of each epoch."""

    def log(stats, model=None) -> None:
        logger.info(
            "%s epoch %d/%d  loss %.4f  acc %.4f  lr %.5f  %.1fs  %.0f samples/s",
            label, stats.epoch, total, stats.loss, stats.accuracy, stats.lr, stats.seconds,
            stats.samples / max(stats.seconds, 1e-9),
        )  # fmt: skip

    return log
