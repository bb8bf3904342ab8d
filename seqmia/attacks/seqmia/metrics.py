"""Stage 3's per-sample metrics of a model's posterior, computed from logits in float64.

Why float64 log-softmax: in float32 the softmax of a confident model rounds to exactly 1, the loss
to exactly 0, and many members and non-members tie at the top of the ranking, which destroys the
low-FPR end of the ROC. The metrics work on exact log-probabilities: only the loss is capped at
-log(1e-30), as in the official code; the entropy and the modified entropy take every probability
as it is, so they keep ranking samples up to a logit margin of about 700 (a floor at 1e-30 would
make them constant from a margin of about 75).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from seqmia.attacks.seqmia.metric_registry import METRICS

LOG_FLOOR = math.log(1e-30)


def _log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(log_p)) for log_p <= 0, accurate near both ends (Maechler's split)."""
    return torch.where(
        log_p > -math.log(2.0),
        torch.log(-torch.expm1(log_p)),
        torch.log1p(-torch.exp(log_p)),
    )


def log_posteriors(logits: torch.Tensor, floor: float | None = LOG_FLOOR) -> torch.Tensor:
    """(N, C) logits -> (N, C) float64 log-probabilities, clamped below at ``floor`` (None: exact).

    ``torch.log_softmax`` forms log(1 + r) with r the other classes' mass, which rounds to 0 once
    r < 1e-16 (a logit margin of about 37), so confident members would still tie at loss 0.
    Summing only the non-argmax terms and taking ``log1p`` keeps r down to float64's range; the
    log-probabilities themselves are exact at any margin (``shifted`` is formed without exp).
    """
    z = logits.double()
    top, top_idx = z.max(dim=1, keepdim=True)
    shifted = z - top  # (N, C), 0 at the argmax
    rest = shifted.exp().scatter(1, top_idx, 0.0).sum(dim=1, keepdim=True)  # (N, 1)
    log_p = shifted - torch.log1p(rest)
    return log_p if floor is None else log_p.clamp(min=floor)


def loss_metric(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy -log p_y, capped at -log(1e-30) as the official code caps it.
    (N, C), (N,) -> (N,)."""
    return -log_p.gather(1, labels[:, None]).squeeze(1).clamp(min=LOG_FLOOR)


def max_metric(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Largest posterior probability max_i p_i. (N, C) -> (N,)."""
    return log_p.max(dim=1).values.exp()


def sd_metric(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Population standard deviation of the posterior vector. (N, C) -> (N,)."""
    return log_p.exp().std(dim=1, correction=0)


def entropy_metric(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shannon entropy -sum_i p_i log p_i. (N, C) -> (N,)."""
    return -(log_p.exp() * log_p).sum(dim=1)


def m_entropy_metric(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Song & Mittal's modified entropy.

    -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i). (N, C), (N,) -> (N,).
    Neither 1 - p_y nor log(1 - p_i) is formed from p: ``1 - p`` rounds to 0 once p_y is within
    1e-16 of 1 (the label term, which then dominates, would vanish), so 1 - p_y is
    -expm1(log p_y) and log(1 - p_i) comes from log p_i directly.
    """
    p = log_p.exp()
    # log(1 - p_i) with no floor; only p_i within 1e-300 of 1 (a margin beyond about 690, where
    # float64 has no other classes' mass left) is taken as 1 - 1e-300, so the value stays finite.
    log_1mp = _log1mexp(log_p.clamp(max=-1e-300))
    is_label = torch.zeros_like(p, dtype=torch.bool).scatter_(1, labels[:, None], True)
    label_term = torch.expm1(log_p) * log_p  # -(1 - p) log p, exact for p near 1
    other_term = -p * log_1mp
    return torch.where(is_label, label_term, other_term).sum(dim=1)


def compute_metrics(
    logits: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> torch.Tensor:
    """Metrics ``names`` for every sample.

    logits: (N, C) any float dtype; labels: (N,) int64. Returns (N, len(names)) float64.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    log_p = log_posteriors(logits, floor=None)
    labels = labels.to(log_p.device)
    return torch.stack([METRICS[name](log_p, labels) for name in names], dim=1)
