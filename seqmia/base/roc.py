"""Stage 5's scoring rules: ROC, AUC, balanced accuracy, TPR at a fixed FPR.

Scores are "higher means more likely a member"; labels are 1 for members, 0 for non-members.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Roc:
    """ROC points for every distinct threshold, from (0, 0) to (1, 1).

    fpr, tpr: (P,) non-decreasing; thresholds: (P,) with ``thresholds[0] = +inf``; point i
    classifies ``score >= thresholds[i]`` as member.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-d")
    if labels.all() or not labels.any():
        raise ValueError("need both members and non-members")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores, labels


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> Roc:
    """ROC of ``scores`` (N,) against ``labels`` (N,); tied scores form one point."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    return Roc(fpr=fpr, tpr=tpr, thresholds=np.r_[np.inf, s[last_of_tie]])


def auc(roc: Roc) -> float:
    """Area under the ROC (trapezoids; ties count half, as the Mann-Whitney statistic does)."""
    return float(np.trapezoid(roc.tpr, roc.fpr))


def tpr_at_fpr(roc: Roc, max_fpr: float) -> float:
    """Conservative TPR at ``max_fpr``: the largest TPR among ROC points with FPR <= max_fpr.

    No interpolation between points (interpolation flatters the low-FPR end).
    """
    ok = roc.fpr <= max_fpr + 1e-12
    return float(roc.tpr[ok].max())


def interpolated_tpr_at_fpr(roc: Roc, max_fpr: float) -> float:
    """TPR at ``max_fpr`` by linear interpolation of the ROC, as the official code reports it."""
    return float(np.interp(max_fpr, roc.fpr, roc.tpr))


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates of 0/1 ``predicted`` (N,)."""
    predicted = np.asarray(predicted).astype(bool)
    labels = np.asarray(labels).astype(bool)
    return float(0.5 * (predicted[labels].mean() + (~predicted[~labels]).mean()))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold t maximising the balanced accuracy of ``scores >= t`` (for calibration data)."""
    roc = roc_curve(scores, labels)
    best = int(np.argmax(roc.tpr - roc.fpr))  # balanced accuracy = (1 + tpr - fpr) / 2
    return float(roc.thresholds[best])


def score_ties(scores: np.ndarray, labels: np.ndarray, fpr_targets: tuple[float, ...]) -> dict:
    """How far ties among ``scores`` (N,) can hide the low-FPR end of the ROC.

    Samples with equal scores form one group (one ROC point). ``top_tie``: the largest group
    among the top-scored samples, those ranked at or above the group where the FPR first
    passes the largest of ``fpr_targets`` (they decide every reported TPR); ``distinct_scores``:
    the number of groups; ``straddled_fpr``: the targets that a tie straddles, i.e. a group of
    two or more samples, members among them, whose FPR range crosses the target, so the
    conservative TPR there drops all of its members at once.
    """
    scores, labels = _check(scores, labels)
    s = np.sort(scores)[::-1]
    y = labels[np.argsort(-scores, kind="stable")]
    starts = np.r_[0, np.flatnonzero(np.diff(s) != 0) + 1]
    sizes = np.diff(np.r_[starts, len(s)])  # (G,) group sizes, best score first
    group_fp = np.add.reduceat((~y).astype(np.int64), starts)  # (G,)
    group_tp = sizes - group_fp
    fpr = np.r_[0, np.cumsum(group_fp)] / (~labels).sum()  # (G + 1,) before/after each group
    passed = np.flatnonzero(fpr[1:] > max(fpr_targets) + 1e-12)
    last = int(passed[0]) if passed.size else len(sizes) - 1
    straddled = []
    for f in fpr_targets:
        crossing = np.flatnonzero((fpr[:-1] <= f + 1e-12) & (fpr[1:] > f + 1e-12))
        if crossing.size and sizes[crossing[0]] > 1 and group_tp[crossing[0]] > 0:
            straddled.append(f"{f:g}")
    return {
        "top_tie": int(sizes[: last + 1].max()),
        "distinct_scores": int(len(sizes)),
        "straddled_fpr": straddled,
    }


def members_above_every_nonmember(scores: np.ndarray, labels: np.ndarray) -> int:
    """How many members score strictly above the highest non-member: what the attack finds with
    no false positive at all. scores, labels: (N,); a member tied with the top non-member does
    not count."""
    scores, labels = _check(scores, labels)
    return int((scores[labels] > scores[~labels].max()).sum())


def attack_report(
    scores: np.ndarray, labels: np.ndarray, threshold: float, fpr_targets: tuple[float, ...]
) -> dict:
    """The ``eval/metrics.json`` entry of one attack.

    ``threshold`` turns scores into member decisions for the balanced accuracy; it must come
    from shadow data (or be fixed in advance, e.g. 0.5 for a probability), never from the target.
    """
    roc = roc_curve(scores, labels)
    n_out = int((np.asarray(labels) == 0).sum())
    n_in = int((np.asarray(labels) == 1).sum())
    found = members_above_every_nonmember(scores, labels)
    return {
        "auc": auc(roc),
        "balanced_accuracy": balanced_accuracy(np.asarray(scores) >= threshold, labels),
        "tpr_at_fpr": {f"{f:g}": tpr_at_fpr(roc, f) for f in fpr_targets},
        # How many non-members stand behind each FPR: below 1 the rate cannot be resolved.
        "nonmembers_at_fpr": {f"{f:g}": f * n_out for f in fpr_targets},
        # Members above every non-member: the TPR at zero false positives, needing no FPR
        # resolution (the rates above rest on f * n_nonmembers non-members).
        "tpr_at_zero_fpr": found / n_in,
        "members_above_every_nonmember": found,
        "n_members": n_in,
        "n_nonmembers": n_out,
        # Ties reported, never hidden: see ``score_ties``.
        **score_ties(scores, labels, fpr_targets),
    }


def bootstrap_intervals(
    scores: np.ndarray,
    labels: np.ndarray,
    fpr_targets: tuple[float, ...],
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> dict:
    """Percentile bootstrap intervals of AUC and of each TPR@FPR over the evaluated samples.

    Members and non-members are resampled separately (with replacement), so every replicate has
    the original counts. Returns ``{"auc": [lo, hi], "tpr_at_fpr": {"0.001": [lo, hi], …}}``.
    """
    scores, labels = _check(scores, labels)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    aucs = np.empty(n_boot)
    tprs = np.empty((n_boot, len(fpr_targets)))
    for b in range(n_boot):
        rows = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        roc = roc_curve(scores[rows], labels[rows])
        aucs[b] = auc(roc)
        tprs[b] = [tpr_at_fpr(roc, f) for f in fpr_targets]
    tail = 100 * (1 - level) / 2
    bounds = lambda v: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]  # noqa: E731
    return {
        "auc": bounds(aucs),
        "tpr_at_fpr": {f"{f:g}": bounds(tprs[:, j]) for j, f in enumerate(fpr_targets)},
    }
