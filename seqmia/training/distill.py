"""Stage 2: recreate the training stages of a model as per-epoch snapshots of a student
distilled from it on soft labels only (the ground truth is never used).

The distillation loss lives here, not in the training loop, so that changing it reruns the
distillation and what follows, never the target, shadow or reference models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from seqmia.models.inference import predict_logits
from seqmia.training.loop import EpochRecord, FitOptions, fit
from seqmia.training.recipe import Recipe


def distill_epochs(epochs: int, shadow_extra_epochs: int, role: str) -> tuple[int, int]:
    """(epochs to run, leading epochs whose snapshots are dropped) for ``role``: the shadow
    student may run ``shadow_extra_epochs`` more and keep its last ``epochs`` snapshots."""
    extra = shadow_extra_epochs if role == "shadow" else 0
    return epochs + extra, extra


def soft_labels(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's posteriors at ``temperature``. logits: (N, C) -> (N, C) rows summing to 1."""
    return torch.softmax(logits / temperature, dim=1)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean of -sum_i q_i log p_i: equals KL(q || p) up to the teacher's (constant) entropy.

    logits: (B, C) student logits; target_probs: (B, C) teacher posteriors.
    """
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def distillation_loss(temperature: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of a student whose logits are divided by ``temperature`` against the teacher's
    posteriors at that temperature (the soft part only: alpha = 1)."""

    def loss(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits / temperature, target_probs)

    return loss


def teacher_class(target_probs: torch.Tensor) -> torch.Tensor:
    """The class the teacher prefers (B,): what a student's accuracy counts agreement with."""
    return target_probs.argmax(dim=1)


def distill(
    student: nn.Module,
    teacher: nn.Module | torch.Tensor,
    inputs,
    recipe: Recipe,
    generator: torch.Generator,
    temperature: float = 1.0,
    skipped: int = 0,
    on_snapshot: Callable[[int, nn.Module], None] | None = None,
    on_epoch: Callable[[EpochRecord, nn.Module], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    options: FitOptions = FitOptions(),
) -> nn.Module:
    """Train the fresh ``student`` in place on ``teacher``'s soft labels and return it.

    teacher: a model (queried once in eval mode on ``inputs``, ``recipe.batch_size`` samples at
    a time) or its logits (N, C) already (a model queried another way).
    inputs: (N, C, H, W) / (N, D) float tensor or ``BatchedInputs``, on the student's device.
    The student trains ``recipe.epochs`` epochs on ``soft_labels(logits, temperature)`` with its
    own logits divided by ``temperature``. After each epoch ``on_epoch(record, student)`` runs,
    then, past the first ``skipped`` epochs, ``on_snapshot(index, student)`` with the 1-based
    snapshot index: the caller saves snapshots as they come instead of holding them.
    """
    if isinstance(teacher, nn.Module):
        teacher = predict_logits(teacher, inputs, recipe.batch_size)
    device = next(student.parameters()).device
    targets = soft_labels(teacher, temperature).to(device)
    del teacher

    def after_epoch(record: EpochRecord, model: nn.Module) -> None:
        if on_epoch is not None:
            on_epoch(record, model)
        if record.epoch > skipped and on_snapshot is not None:
            on_snapshot(record.epoch - skipped, model)

    return fit(
        student,
        inputs,
        targets,
        recipe,
        generator,
        loss=distillation_loss(temperature),
        target_class=teacher_class,
        on_epoch=after_epoch,
        should_stop=should_stop,
        options=options,
    )
