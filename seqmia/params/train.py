"""Section ``train``: architecture and recipe of the target, shadow and distilled models."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import seqmia.params.recipe  # noqa: F401 - the rules of the recipe fields
from seqmia.models.registry import MODELS, ModelOptions
from seqmia.params.schema import AT_LEAST_1, OneOf, register_rules, register_section
from seqmia.training.recipe import Recipe


@dataclasses.dataclass(frozen=True)
class TrainParams(Recipe, ModelOptions):
    """The optimisation recipe (``Recipe``'s fields) and architecture (``model`` and the
    ``ModelOptions`` fields: ``mlp_widths`` and ``mlp_activation`` for mlp, WRN-depth-width for
    wrn, depth 6n+4 as Zagoruyko & Komodakis count it or 6n+2) shared by target, shadow and
    distilled models."""

    model: Annotated[str, OneOf(MODELS)]
    augment: bool
    # Autocast of training forward passes: auto (bf16 on a CUDA GPU that has it, else fp32) |
    # fp32 | bf16 | fp16 (CUDA only, with loss scaling). Inference always runs in float32.
    precision: Literal["auto", "fp32", "bf16", "fp16"]


register_rules(
    TrainParams,
    {
        "mlp_widths": (
            lambda v: len(v) >= 1 and all(w >= 1 for w in v),
            "a non-empty list of layer widths >= 1",
        ),
        "wrn_depth": (
            lambda v: v >= 8 and ((v - 4) % 6 == 0 or (v - 2) % 6 == 0),
            "a depth of the form 6n+4 (16, 22, 28, 40) or 6n+2 (20, 26, 32), at least 8",
        ),
        "wrn_width": AT_LEAST_1,
    },
)
register_section("train", TrainParams)
