"""What the attacks that the evaluate stage scores read, and what each returns.

The audit (``seqmia.audit.protocol``) loads the artefacts once into ``ScoringInputs`` and calls
the scorer of every registry entry (``seqmia.attacks.registry``) with it; each scorer takes what
its entry declares it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Scored:
    """One reported result: the target samples' scores (N,), higher = member; the decision
    threshold, fixed in advance or calibrated on the attacker's side only; what the attack chose
    on the way (added to its report); lines for the stage's log."""

    scores: np.ndarray
    threshold: float
    chosen: dict[str, Any] | None = None
    log: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RoleData:
    """One role's attack samples (N of them, in the audit's order) as the scorers read them.

    labels, members: (N,); logits: (N, C) float64, the role's original model; ref_logits: (N, K, C)
    the K reference models, ref_out: (N, K) whether each left the sample out; population_log_p:
    (Z,) log p(z|model) of the role's original model on the population samples; fitted: attack
    name -> (N,) the scores that the attack's own fitting stage gave the role's samples (the
    quantile regression's).
    """

    labels: np.ndarray
    members: np.ndarray
    logits: np.ndarray
    ref_logits: np.ndarray
    ref_out: np.ndarray
    population_log_p: np.ndarray
    fitted: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ScoringInputs:
    """Everything an evaluate-stage scorer may read.

    target, shadow: each role's samples (the shadow side calibrates, the target side is scored);
    population_ref_p: (Z, K) p(z|ref_k) of the reference models on the population samples;
    sequences: (N, T, k) the target samples' metric sequences; attack_summary, attack_weights:
    SeqMIA's fitted attack (one state dict per ensemble member); settings: attack name -> its
    params (e.g. RMIA's candidates for a and its gamma).
    """

    target: RoleData
    shadow: RoleData
    population_ref_p: np.ndarray
    sequences: np.ndarray
    attack_summary: dict
    attack_weights: list
    settings: dict[str, dict[str, Any]]

    @property
    def num_classes(self) -> int:
        return self.target.logits.shape[1]


def per_reference(
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    logits: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """``statistic(logits (N, C), labels (N,)) -> (N,)`` under each of K reference models:
    logits (N, K, C) -> (N, K)."""
    return np.stack([statistic(logits[:, k], labels) for k in range(logits.shape[1])], axis=1)
