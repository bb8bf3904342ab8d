"""The pipeline's classifiers (target, shadow, reference models and distilled students): built
from the ``train.*`` architecture options, fresh or with saved weights."""

from __future__ import annotations

from pathlib import Path

import torch

from seqmia.base.artifacts import load_state_dict
from seqmia.base.seeding import make_generator
from seqmia.models.architectures import ModelOptions, build_model
from seqmia.params.train import TrainParams


def new_model(
    train: TrainParams, shape: tuple[int, ...], classes: int, generator: torch.Generator
) -> torch.nn.Module:
    """A freshly initialised ``train.model`` (with its ``train.*`` options) for inputs of
    ``shape`` ((C, H, W) or (D,)) and ``classes`` classes, its weights drawn from ``generator``."""
    options = ModelOptions(
        mlp_widths=train.mlp_widths,
        mlp_activation=train.mlp_activation,
        wrn_depth=train.wrn_depth,
        wrn_width=train.wrn_width,
    )
    return build_model(train.model, shape, classes, generator, options)


def load_model(
    train: TrainParams, shape: tuple[int, ...], classes: int, path: Path, device: torch.device
) -> torch.nn.Module:
    """``train.model`` with the weights saved at ``path`` (weights only), in eval mode on
    ``device``."""
    model = new_model(train, shape, classes, make_generator(0, "load"))
    model.load_state_dict(load_state_dict(path))
    return model.to(device).eval()
