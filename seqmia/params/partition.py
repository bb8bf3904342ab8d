"""Section ``partition``: sizes of the five disjoint parts."""

from __future__ import annotations

import dataclasses
from typing import Literal

from seqmia.data.parts import PARTS
from seqmia.params.schema import AT_LEAST_1, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class PartitionParams:
    """Sizes of the five disjoint parts: per class, or in total dealt out by class proportions."""

    # per_class: every class gives each part exactly that many samples (balanced data).
    # total: each part gets that many samples in all, stratified by the classes' proportions
    # (for imbalanced data such as Location, whose smallest class cannot fill per-class sizes).
    unit: Literal["per_class", "total"]
    target_in: int
    target_out: int
    shadow_in: int
    shadow_out: int
    distill: int


register_rules(PartitionParams, {part: AT_LEAST_1 for part in PARTS})
register_section("partition", PartitionParams)
