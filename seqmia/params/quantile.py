"""Section ``quantile``: the quantile-regression attack's regressor."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import seqmia.params.recipe  # noqa: F401 - the rules of the recipe fields
from seqmia.models.registry import MODELS
from seqmia.params.schema import OneOf, register_rules, register_section
from seqmia.training.recipe import Recipe


@dataclasses.dataclass(frozen=True)
class QuantileParams(Recipe):
    """Quantile regression (Bertran et al., NeurIPS 2023): per role, a regressor of the role's
    model's hinge score on the population (the distillation part, never trained on by either
    model), trained with this recipe.

    ``model``: the regressor's architecture, a model registry name built with ``2 * C`` outputs
    and the ``train.mlp_*`` / ``train.wrn_*`` options.
    """

    model: Annotated[str, OneOf(MODELS)]
    # The share of the population held out: the epoch with the lowest Gaussian negative
    # log-likelihood there is kept, and the report gives its standardised scores' mean and sd.
    holdout: float


register_rules(
    QuantileParams, {"holdout": (lambda v: 0 < v < 1, "a fraction strictly between 0 and 1")}
)
register_section("quantile", QuantileParams)
