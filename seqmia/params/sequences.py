"""Section ``sequences``: the metrics of each sample's sequence."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from seqmia.attacks.seqmia.metric_registry import METRICS
from seqmia.params.schema import AT_LEAST_1, OneOf, register_rules, register_section

MetricName = Annotated[str, OneOf(METRICS)]


@dataclasses.dataclass(frozen=True)
class SequencesParams:
    """Which metrics make up each sample's (n+1) x k sequence."""

    metrics: tuple[MetricName, ...]
    batch_size: int


register_rules(
    SequencesParams,
    {
        "metrics": (
            lambda v: len(v) >= 1 and len(set(v)) == len(v),
            f"a non-empty list of distinct names from {list(METRICS)}",
        ),
        "batch_size": AT_LEAST_1,
    },
)
register_section("sequences", SequencesParams)
