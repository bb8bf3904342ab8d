"""Section ``evaluate``: how the attacks are scored."""

from __future__ import annotations

import dataclasses

from seqmia.params.schema import register_rules, register_section


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """How the attacks are scored."""

    fpr_targets: tuple[float, ...]
    # Bootstrap replicates for 95% intervals of AUC and TPR@FPR (0 turns them off).
    bootstrap: int
    # The delta of the empirical (epsilon, delta) lower bound each attack gives.
    delta: float


register_rules(
    EvaluateParams,
    {
        "fpr_targets": (
            lambda v: len(v) >= 1 and all(0 < x < 1 for x in v),
            "a non-empty list of rates strictly between 0 and 1",
        ),
        "bootstrap": (lambda v: v >= 0, "an integer >= 0 (0: no intervals)"),
        "delta": (lambda v: 0 <= v < 1, "a number in [0, 1), e.g. 1e-5"),
    },
)
register_section("evaluate", EvaluateParams)
