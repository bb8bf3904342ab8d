"""Section ``reference``: LiRA's reference models."""

from __future__ import annotations

import dataclasses

from seqmia.params.schema import AT_LEAST_1, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class ReferenceParams:
    """Reference models for LiRA (offline): trained like the target on the attacker's data."""

    # How many; each trains on its own class-stratified draw from shadow_in + shadow_out, of
    # the target's training-set size.
    models: int


register_rules(ReferenceParams, {"models": AT_LEAST_1})
register_section("reference", ReferenceParams)
