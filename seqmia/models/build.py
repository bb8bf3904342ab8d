"""The pipeline's classifiers (target, shadow, reference models and distilled students): an
``Architecture`` built fresh or with saved weights."""

from __future__ import annotations

from pathlib import Path

import torch

from seqmia.base.artifacts import load_state_dict
from seqmia.base.seeding import make_generator
from seqmia.models.architectures import build_model
from seqmia.models.registry import Architecture


def make_dp_trainable(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` adapted the standard way so that Opacus can compute its per-sample gradients:
    batch norms become group norms (Opacus's ``ModuleValidator.fix``), ReLUs stop working in
    place (``dp_adaptation`` says what changed); a model with no batch norm keeps its weights."""
    from opacus.validators import ModuleValidator

    model = ModuleValidator.fix(model)
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return model


def new_model(
    architecture: Architecture, shape: tuple[int, ...], classes: int, generator: torch.Generator
) -> torch.nn.Module:
    """A freshly initialised ``architecture`` for inputs of ``shape`` ((C, H, W) or (D,)) and
    ``classes`` classes, its weights drawn from ``generator`` (GroupNorm layers of a
    ``dp_trainable`` one start as the BatchNorm layers they replace: unit scale, zero shift)."""
    model = build_model(architecture.name, shape, classes, generator, architecture.options)
    return make_dp_trainable(model) if architecture.dp_trainable else model


def dp_adaptation(model: torch.nn.Module) -> str:
    """What ``make_dp_trainable`` changed in ``model``, for its report."""
    norms = sum(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    relus = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
    changes = []
    if norms:
        changes.append(
            f"{norms} BatchNorm2d layers replaced by GroupNorm (Opacus ModuleValidator.fix: "
            "batch statistics mix samples, so per-sample gradients do not exist)"
        )
    if relus:
        changes.append(f"{relus} ReLUs not in place (Opacus's hooks keep each layer's output)")
    return "; ".join(changes) or "none: Opacus trains this architecture as it is"


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
