"""Section ``rmia``: RMIA offline from LiRA's reference models."""

from __future__ import annotations

import dataclasses

from seqmia.params.schema import POSITIVE, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class RmiaParams:
    """RMIA, offline (Zarifzadeh et al., ICML 2024), from LiRA's reference models.

    Population samples z come from the attacker's distillation part, never from the target's.
    """

    # Candidates for the offline coefficient a in p(x) = (1+a)/2 mean_OUT p(x|ref) + (1-a)/2;
    # the one with the highest AUC on the shadow model (attacker data) is used.
    offline_a: tuple[float, ...]
    # A pair (x, z) counts when LR(x, z) > gamma.
    gamma: float
    # How many population samples z to draw from the distillation part (0: all of them).
    population: int


register_rules(
    RmiaParams,
    {
        "offline_a": (
            lambda v: len(v) >= 1 and all(0 <= a <= 1 for a in v),
            "a non-empty list of numbers in [0, 1]",
        ),
        "gamma": POSITIVE,
        "population": (lambda v: v >= 0, "an integer >= 0 (0: the whole distillation part)"),
    },
)
register_section("rmia", RmiaParams)
