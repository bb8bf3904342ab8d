"""One seed drives every random choice: each consumer derives its own stream from it by name."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: stages without it never pay for it
    import torch


def derive_seed(seed: int, *names: str) -> int:
    """Stable 63-bit seed for the stream named ``names`` under the run's ``seed``.

    Uses a hash rather than ``seed + offset`` so that streams for different purposes never
    collide and adding a new consumer never shifts existing ones.
    """
    text = "/".join([str(seed), *names]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def make_generator(seed: int, *names: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``derive_seed(seed, *names)``."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *names))
    return gen
