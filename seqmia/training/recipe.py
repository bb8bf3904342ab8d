"""One training recipe for every optimiser loop: classifiers, students and attack models.

A ``Recipe`` is declared once; the params schema reuses it (``train.*`` and ``attack.*`` extend
it, each ``baselines.<family>`` section is one), so a field or its meaning never has a second
copy. torch is imported inside ``make_optimizer`` only: the schema imports this module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("step", "cosine")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Optimiser, epochs, batches and per-epoch learning-rate schedule.

    sgd: SGD with ``momentum``; adam: Adam (``momentum`` unused). Weight decay applies to weights
    only, not to biases or normalisation parameters. step: StepLR(step_size, gamma) stepped once
    per epoch while lr > min_lr (``gamma: 1`` keeps the rate constant); cosine: annealing from
    ``lr`` to 0 over ``epochs`` (``step_size``, ``gamma``, ``min_lr`` unused).
    """

    optimizer: Literal["sgd", "adam"]
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: Literal["step", "cosine"]
    step_size: int
    gamma: float
    min_lr: float


RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))


def as_recipe(source: Any, **changes: Any) -> Recipe:
    """The plain ``Recipe`` held by ``source`` (a ``Recipe`` or a params section extending it),
    with ``changes`` applied (e.g. another epoch count)."""
    # A changed field is never read from ``source``: the params-reads record shows only what
    # the recipe really takes from a section (distill replaces train.epochs).
    values = {n: changes[n] if n in changes else getattr(source, n) for n in RECIPE_FIELDS}
    return Recipe(**values)


def step_lr(epoch: int, lr: float, step_size: int, gamma: float, min_lr: float) -> float:
    """Learning rate for 0-based ``epoch`` under StepLR stepped once per epoch while lr > min_lr.

    This is the official schedule: the scheduler's epoch counter only advances while the current
    rate is above ``min_lr``, so the rate stops decaying once it first drops to ``min_lr`` or below.
    """
    current, counter = lr, 0
    for _ in range(epoch):
        if current > min_lr:
            counter += 1
            current = lr * gamma ** (counter // step_size)
    return current


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups with weight decay on weights only, not on biases or batch-norm parameters.

    Every parameter with fewer than 2 dimensions is a bias or a normalisation scale/shift.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def cosine_lr(epoch: int, lr: float, epochs: int) -> float:
    """Cosine annealing from ``lr`` to 0 over ``epochs`` epochs (0-based ``epoch``)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * epoch / epochs))


def lr_for_epoch(recipe: Recipe, epoch: int) -> float:
    """The recipe's learning rate during 0-based ``epoch``."""
    if recipe.schedule == "cosine":
        return cosine_lr(epoch, recipe.lr, recipe.epochs)
    if recipe.schedule == "step":
        return step_lr(epoch, recipe.lr, recipe.step_size, recipe.gamma, recipe.min_lr)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; choose from {list(SCHEDULES)}")


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``model``'s parameters (weight decay on weights only).

    The learning rate given here is the recipe's base rate; training loops set each epoch's rate
    from ``lr_for_epoch``.
    """
    import torch

    groups = decay_groups(model, recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose from {list(OPTIMIZERS)}")
