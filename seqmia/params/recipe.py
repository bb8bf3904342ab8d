"""Rules of every section that is a ``seqmia.training.recipe.Recipe`` (``train``, ``attack``, each
``baselines.<family>``): one recipe shape, one set of rules."""

from __future__ import annotations

from seqmia.params.schema import AT_LEAST_1, NON_NEGATIVE, POSITIVE, register_rules
from seqmia.training.recipe import Recipe

register_rules(
    Recipe,
    {
        "epochs": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "lr": POSITIVE,
        "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "weight_decay": NON_NEGATIVE,
        "step_size": AT_LEAST_1,
        "gamma": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
        "min_lr": NON_NEGATIVE,
    },
)
