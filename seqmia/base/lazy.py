"""A function named by its module and attribute, imported only when it is first called.

The registries of names (models, datasets, metrics, attack architectures) are read by params
validation, which every stage runs before its work. Holding the implementations by name keeps
those registries free of torch, pandas and PIL, so a stage that needs none of them (partition)
never pays their import time for the names alone.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Lazy:
    """``module:attribute`` with keyword arguments bound to it, like ``functools.partial``.

    ``Lazy("seqmia.attacks.networks:recurrent_attack", cell="gru")(*args)`` imports
    ``seqmia.attacks.networks`` (if it is not yet) and calls
    ``recurrent_attack(*args, cell="gru")``.
    """

    target: str  # "package.module:attribute"
    bound: tuple[tuple[str, Any], ...] = ()

    def __init__(self, target: str, **bound: Any) -> None:
        module, sep, attribute = target.partition(":")
        if not (module and sep and attribute):
            raise ValueError(f"a lazy target is 'module:attribute', got {target!r}")
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "bound", tuple(sorted(bound.items())))

    def load(self) -> Callable[..., Any]:
        """The named function itself (its module imported now if it was not)."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **dict(self.bound), **kwargs)
