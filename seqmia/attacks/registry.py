"""The shadow-trained comparison attacks that ``baselines.attacks`` may name: one registry.

Params validation takes its names from ``BASELINES`` and the baselines stage expands the chosen
entries into the models it trains, so a name cannot be accepted by one and ignored by the other.
This module imports only the standard library: validating params.yaml must not pay for torch.
"""

from __future__ import annotations

import dataclasses

# TrajectoryMIA's attack MLP (Liu et al., CCS 2022); also the flat "no time order" ablation's.
DEFAULT_MLP_WIDTHS = (512, 128, 32)


@dataclasses.dataclass(frozen=True)
class BaselineSpec:
    """One trained baseline model: its name, attack architecture, input and recipe section."""

    name: str
    architecture: str
    features: str  # "topk" | "loss_trajectory" | "sequences" | "metric:<name>"
    recipe: str  # the baselines.<recipe> params section it trains with
    mlp_widths: tuple[int, ...] = DEFAULT_MLP_WIDTHS


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A ``baselines.attacks`` entry: which models it trains on which inputs.

    ``features``: ``topk`` (log of the final model's sorted top-k posteriors), ``loss_trajectory``
    (the loss sequence (T,); needs the loss metric), ``sequences`` (every metric (T, k)) or
    ``each_metric`` (one model per metric on its (T, 1) sequence; needs two metrics or more, as
    with one it would be SeqMIA itself).
    """

    architecture: str
    features: str
    recipe: str
    mlp_widths: tuple[int, ...] = DEFAULT_MLP_WIDTHS

    def specs(self, name: str, metrics: list[str]) -> list[BaselineSpec]:
        """The models this entry trains when the sequences hold ``metrics`` (may be none)."""
        if self.features == "each_metric":
            if len(metrics) < 2:
                return []
            return [
                BaselineSpec(
                    f"seqmia_only_{m}",
                    self.architecture,
                    f"metric:{m}",
                    self.recipe,
                    self.mlp_widths,
                )  # fmt: skip
                for m in metrics
            ]
        if self.features == "loss_trajectory" and "loss" not in metrics:
            return []
        return [BaselineSpec(name, self.architecture, self.features, self.recipe, self.mlp_widths)]


BASELINES: dict[str, Baseline] = {
    # ML-Leaks (Salem et al., NDSS 2019): a 64-unit MLP on the sorted top-k posteriors.
    "nn_posterior": Baseline("mlp", "topk", "nn_posterior", mlp_widths=(64,)),
    "trajectory_mia": Baseline("mlp", "loss_trajectory", "trajectory_mia"),
    # SeqMIA ablations: no time order, no attention, one metric at a time.
    "seqmia_mlp": Baseline("mlp", "sequences", "seqmia_ablations"),
    "seqmia_lstm": Baseline("lstm", "sequences", "seqmia_ablations"),
    "seqmia_single_metric": Baseline("attention_lstm", "each_metric", "seqmia_ablations"),
}


def expand_baselines(
    attacks: tuple[str, ...] | list[str], metrics: list[str]
) -> list[BaselineSpec]:
    """The models that ``attacks`` (registry names, in order) train, given the stored metrics."""
    unknown = [a for a in attacks if a not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINES)}")
    return [spec for attack in attacks for spec in BASELINES[attack].specs(attack, metrics)]
