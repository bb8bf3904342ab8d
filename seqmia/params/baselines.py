"""Section ``baselines``: shadow-trained comparison attacks, each family with its own recipe."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import seqmia.params.recipe  # noqa: F401 - the rules of the recipe fields
from seqmia.attacks.registry import RECIPE_SECTIONS, TRAINED
from seqmia.params.schema import AT_LEAST_1, FRACTION, OneOf, register_rules, register_section
from seqmia.training.recipe import Recipe


@dataclasses.dataclass(frozen=True)
class BaselinesParams:
    """Shadow-trained comparison attacks: earlier attacks and SeqMIA ablations.

    nn_posterior: MLP on the log of the final model's sorted top-k posteriors (ML-Leaks style);
    trajectory_mia: MLP on the loss trajectory (snapshots + final model);
    seqmia_mlp: the multi-metric sequence flattened into an MLP (no time order);
    seqmia_lstm: the LSTM without attention; seqmia_single_metric: the attention-LSTM on each
    single-metric sequence. Each family trains with its own recipe below and selects its epoch
    on held-out shadow data.
    """

    attacks: tuple[Annotated[str, OneOf(TRAINED)], ...]
    val_fraction: float
    hidden_size: int
    topk: int
    nn_posterior: Recipe
    trajectory_mia: Recipe
    seqmia_ablations: Recipe


# One recipe section per recipe the registry's trained attacks name, and no other.
assert RECIPE_SECTIONS == tuple(
    f.name for f in dataclasses.fields(BaselinesParams) if f.type in (Recipe, "Recipe")
), RECIPE_SECTIONS

register_rules(
    BaselinesParams,
    {
        "val_fraction": FRACTION,
        "hidden_size": AT_LEAST_1,
        "topk": AT_LEAST_1,
        "attacks": (lambda v: len(set(v)) == len(v), "a list of distinct attack names"),
    },
)
register_section("baselines", BaselinesParams)
