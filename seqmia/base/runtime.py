"""Device and thread choices for the stages."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from seqmia.base.errors import UserError

if TYPE_CHECKING:  # torch is imported where it is used: stages without it never pay for it
    import torch


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device (must exist)."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if device.index is None else device.index
        if index >= count:
            have = f"only {count} CUDA device(s)" if count else "no CUDA device"
            raise UserError(
                f"params key 'device' is '{requested}', but this machine has {have}; "
                "use device: auto or cpu"
            )
    return device


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` -> "bf16" on a CUDA device that supports it (mixed precision pays there: tensor
    cores, half the activation memory), else "fp32"; explicit choices are checked."""
    import torch

    cuda = device.type == "cuda"
    if requested == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if requested == "fp16" and not cuda:
        raise RuntimeError(
            f"train.precision 'fp16' needs a CUDA device, but this stage runs on {device}; "
            "use auto, fp32 or bf16"
        )
    return requested


def available_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Intra-op threads for each of ``workers`` concurrent CPU workers (at least 1).

    Two one-thread workers side by side out-run one two-thread worker on small convolutions,
    so the cores are divided between concurrent tasks rather than shared.
    """
    return max(1, available_cpus() // max(1, workers))
