"""Section ``distill``: knowledge distillation into snapshots."""

from __future__ import annotations

import dataclasses

from seqmia.params.schema import AT_LEAST_1, POSITIVE, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class DistillParams:
    """Knowledge distillation that recreates the training stages as snapshots."""

    epochs: int
    temperature: float
    # Extra leading epochs for the shadow student; its last ``epochs`` snapshots are kept.
    shadow_extra_epochs: int


register_rules(
    DistillParams,
    {
        "epochs": AT_LEAST_1,
        "temperature": POSITIVE,
        "shadow_extra_epochs": (lambda v: v >= 0, "an integer >= 0"),
    },
)
register_section("distill", DistillParams)
