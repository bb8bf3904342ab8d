"""Metric attacks at the final model: one number per sample from its posterior, no training.

Each attack turns a metric into a member score (higher = member): the negative loss, entropy or
modified entropy, or the maximum confidence. The class-conditional variants (Song & Mittal 2021)
calibrate one threshold per class on the shadow model's members and non-members and score a
target sample by its distance past its class's threshold, so classes that are easy or hard for
the model are not judged on one scale.
"""

from __future__ import annotations

import numpy as np
import torch

from seqmia.attacks.scoring import Scored, ScoringInputs
from seqmia.attacks.seqmia.metrics import compute_metrics, log_posteriors
from seqmia.base.roc import best_threshold


def metric_scores(logits: np.ndarray, labels: np.ndarray, metric: str, sign: float) -> np.ndarray:
    """``sign`` times metric ``metric`` (a ``METRICS`` name) of final-model logits (N, C) and
    labels (N,): (N,) float64, higher = member when ``sign`` says which way the metric goes."""
    values = compute_metrics(
        torch.from_numpy(np.array(logits, dtype=np.float64)),
        torch.from_numpy(np.array(labels, dtype=np.int64)),
        [metric],
    ).numpy()  # (N, 1)
    return sign * values[:, 0]


def score_metric_attack(
    inputs: ScoringInputs, name: str, metric: str, sign: float
) -> dict[str, Scored]:
    """The metric attack ``name``: its target scores with a threshold calibrated on the shadow
    model's samples, and its class-conditional twin ``<name>_cc`` (one threshold per class,
    calibrated likewise; its scores are distances past the threshold, so 0 decides)."""
    target, shadow = inputs.target, inputs.shadow
    t_scores = metric_scores(target.logits, target.labels, metric, sign)
    s_scores = metric_scores(shadow.logits, shadow.labels, metric, sign)
    per_class = class_thresholds(s_scores, shadow.labels, shadow.members, inputs.num_classes)
    return {
        name: Scored(t_scores, best_threshold(s_scores, shadow.members)),
        f"{name}_cc": Scored(class_conditional_scores(t_scores, target.labels, per_class), 0.0),
    }


def class_thresholds(
    scores: np.ndarray, labels: np.ndarray, members: np.ndarray, num_classes: int
) -> np.ndarray:
    """Per-class threshold (C,) maximising balanced accuracy on calibration (shadow) data.

    A class without both members and non-members falls back to the global threshold.
    """
    global_t = best_threshold(scores, members)
    out = np.full(num_classes, global_t, dtype=np.float64)
    for c in range(num_classes):
        mask = labels == c
        if 0 < members[mask].sum() < mask.sum():
            t = best_threshold(scores[mask], members[mask])
            # The top threshold is +inf ("nobody is a member"); keep scores finite.
            out[c] = t if np.isfinite(t) else scores[mask].max() + 1e-12
    return out


def class_conditional_scores(
    scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Score minus the sample's class threshold (N,): >= 0 means "member" for that class."""
    return scores - thresholds[labels]


def topk_posteriors(logits: np.ndarray, k: int) -> np.ndarray:
    """The k largest posterior probabilities, descending: (N, C) logits -> (N, min(k, C))."""
    probs = torch.softmax(torch.from_numpy(np.array(logits, dtype=np.float64)), dim=1).numpy()
    return -np.sort(-probs, axis=1)[:, :k]


def topk_log_posteriors(logits: np.ndarray, k: int) -> np.ndarray:
    """Logarithms of the k largest posteriors, descending: (N, C) logits -> (N, min(k, C)).

    The NN attack's input in a form that cannot saturate: a confident model's top posterior
    rounds to exactly 1.0 (in float32 already at a margin of about 17), so distinct samples
    would tie, while its logarithm, about -(mass of the other classes), stays distinct.
    """
    log_p = log_posteriors(torch.from_numpy(np.array(logits, dtype=np.float64))).numpy()
    return -np.sort(-log_p, axis=1)[:, :k]
