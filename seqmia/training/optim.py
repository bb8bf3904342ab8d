"""Optimiser helpers shared by model training and attack training."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the params schema imports this module, torch-free
    from torch import nn


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
