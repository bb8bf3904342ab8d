"""Section ``dp``: DP-SGD (Opacus) for the models the pipeline trains on private data."""

from __future__ import annotations

import dataclasses

from seqmia.params.schema import NON_NEGATIVE, POSITIVE, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class DpParams:
    """Differentially private training of the target, shadow and reference models (the attacker
    knows the recipe, so its own models follow it): per-sample clipping and Gaussian noise with
    Poisson-sampled batches, ε counted by Opacus's RDP accountant. Distilled students and
    quantile regressors are the attacker's own models and train without it."""

    enabled: bool
    # The ε the whole training (train.epochs) may spend; the noise multiplier is then found by
    # the accountant. 0: use ``noise_multiplier`` as given.
    epsilon: float
    # σ, the noise's standard deviation over max_grad_norm; used when epsilon is 0.
    noise_multiplier: float
    # C, each sample's gradient is clipped to this L2 norm.
    max_grad_norm: float
    # δ of the (ε, δ) guarantee; must be below 1/N, N the smallest training set.
    delta: float


register_rules(
    DpParams,
    {
        "epsilon": NON_NEGATIVE,
        "noise_multiplier": NON_NEGATIVE,
        "max_grad_norm": POSITIVE,
        "delta": (lambda v: 0 < v < 1, "a number strictly between 0 and 1, e.g. 1e-5"),
    },
)
register_section("dp", DpParams)
