"""The pipeline's classifiers (target, shadow, reference models and distilled students): an
``Architecture`` built fresh or with saved weights."""

from __future__ import annotations

from pathlib import Path

import torch

from seqmia.base.artifacts import load_state_dict
from seqmia.base.seeding import make_generator
from seqmia.models.architectures import build_model
from seqmia.models.registry import Architecture


def new_model(
    architecture: Architecture, shape: tuple[int, ...], classes: int, generator: torch.Generator
) -> torch.nn.Module:
    """A freshly initialised ``architecture`` for inputs of ``shape`` ((C, H, W) or (D,)) and
    ``classes`` classes, its weights drawn from ``generator``."""
    return build_model(architecture.name, shape, classes, generator, architecture.options)


def load_model(
    architecture: Architecture,
    shape: tuple[int, ...],
    classes: int,
    path: Path,
    device: torch.device,
) -> torch.nn.Module:
    """``architecture`` with the weights saved at ``path`` (weights only), in eval mode on
    ``device``."""
    model = new_model(architecture, shape, classes, make_generator(0, "load"))
    model.load_state_dict(load_state_dict(path))
    return model.to(device).eval()
