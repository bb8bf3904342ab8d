"""Section ``attack``: SeqMIA's attack model and its training recipe."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import seqmia.params.recipe  # noqa: F401 - the rules of the recipe fields
from seqmia.attacks.architectures import ATTACKS, INPUT_TRANSFORMS, SELECTIONS
from seqmia.params.schema import AT_LEAST_1, FRACTION, OneOf, register_rules, register_section
from seqmia.training.recipe import Recipe


@dataclasses.dataclass(frozen=True)
class AttackParams(Recipe):
    """The attention-LSTM attack model and its training recipe (``Recipe``'s fields)."""

    hidden_size: int
    num_layers: int
    # Fraction of the shadow sequences held out for model selection (never target data).
    val_fraction: float
    selection: Annotated[str, OneOf(SELECTIONS)]
    # none (official: raw metrics) | standardize (z-score each metric) | log_loss_metrics (the
    # logarithm of the loss-like metrics loss, entropy, m_entropy, which spreads members' tiny
    # values) | log_loss_metrics_standardize (that logarithm, then z-score each metric).
    input_transform: Annotated[str, OneOf(INPUT_TRANSFORMS)]
    # attention_lstm is SeqMIA; the others are ablations (no attention, GRU cell, flat MLP).
    architecture: Annotated[str, OneOf(ATTACKS)]
    # K attack models trained alike from different seeds; the score is their mean log-odds
    # (1: the single model of the paper).
    ensemble: int


register_rules(
    AttackParams,
    {
        "hidden_size": AT_LEAST_1,
        "num_layers": AT_LEAST_1,
        "val_fraction": FRACTION,
        "ensemble": AT_LEAST_1,
    },
)
register_section("attack", AttackParams)
