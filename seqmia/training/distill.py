"""Stage 2: recreate the training stages of a model as per-epoch snapshots of a student
distilled from it on soft labels only (the ground truth is never used)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from seqmia.models.inference import predict_logits
from seqmia.training.loop import EpochStats, Recipe, fit

if TYPE_CHECKING:
    from seqmia.params.distill import DistillParams


def distill_epochs(distill: DistillParams, role: str) -> tuple[int, int]:
    """(epochs to run, leading epochs whose snapshots are dropped) for ``role``: the shadow
    student may run ``distill.shadow_extra_epochs`` more and keep its last ``distill.epochs``."""
    extra = distill.shadow_extra_epochs if role == "shadow" else 0
    return distill.epochs + extra, extra


def soft_labels(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's posteriors at ``temperature``. logits: (N, C) -> (N, C) rows summing to 1."""
    return torch.softmax(logits / temperature, dim=1)


def distill(
    student: nn.Module,
    teacher: nn.Module | torch.Tensor,
    inputs,
    recipe: Recipe,
    generator: torch.Generator,
    temperature: float = 1.0,
    skipped: int = 0,
    on_snapshot: Callable[[int, nn.Module], None] | None = None,
    on_epoch: Callable[[EpochStats, nn.Module], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    augment: bool = False,
    precision: str = "fp32",
) -> nn.Module:
    """Train the fresh ``student`` in place on ``teacher``'s soft labels and return it.

    teacher: a model (queried once in eval mode on ``inputs``, ``recipe.batch_size`` samples at
    a time) or its logits (N, C) already (a model queried another way).
    inputs: (N, C, H, W) / (N, D) float tensor or ``NormalisedImages``, on the student's device.
    The student trains ``recipe.epochs`` epochs on ``soft_labels(logits, temperature)`` with its
    own logits divided by ``temperature``. After each epoch ``on_epoch(stats, student)`` runs,
    then, past the first ``skipped`` epochs, ``on_snapshot(index, student)`` with the 1-based
    snapshot index: the caller saves snapshots as they come instead of holding them.
    """
    if isinstance(teacher, nn.Module):
        teacher = predict_logits(teacher, inputs, recipe.batch_size)
    device = next(student.parameters()).device
    targets = soft_labels(teacher, temperature).to(device)
    del teacher

    def after_epoch(stats: EpochStats, model: nn.Module) -> None:
        if on_epoch is not None:
            on_epoch(stats, model)
        if stats.epoch > skipped and on_snapshot is not None:
            on_snapshot(stats.epoch - skipped, model)

    return fit(
        student, inputs, targets, recipe, generator, temperature=temperature,
        on_epoch=after_epoch, should_stop=should_stop, augment=augment, precision=precision,
    )  # fmt: skip
