"""Querying a model: batched logits in eval mode and accuracy. Apart from the training loop, so
that a stage which only queries models (sequences) does not depend on how they are fitted."""

from __future__ import annotations

import torch
from torch import nn


def memory_format(inputs) -> torch.memory_format:
    """channels_last for image batches: the faster layout for convolutions on a CPU, and the one
    tensor cores want on a GPU."""
    return torch.channels_last if inputs.ndim == 4 else torch.contiguous_format


@torch.no_grad()
def predict_logits(model: nn.Module, inputs, batch_size: int = 500) -> torch.Tensor:
    """Logits of ``model`` in eval mode, ``batch_size`` samples at a time.

    inputs: (N, C, H, W) / (N, D) float tensor, or ``seqmia.data.batches.BatchedInputs`` (any
    object whose slices are such tensors) -> (N, classes) float32 on CPU.
    """
    model.eval()
    fmt = memory_format(inputs)
    model.to(memory_format=fmt)
    device = next(model.parameters()).device
    out = [
        model(inputs[start : start + batch_size].to(device).contiguous(memory_format=fmt))
        .float()
        .cpu()
        for start in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(out)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy. logits: (N, C); labels: (N,)."""
    return float((logits.argmax(dim=1) == labels).float().mean())
