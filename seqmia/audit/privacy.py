"""What an audit tells a model owner: an empirical privacy bound and the exposed samples.

**The bound.** If the training algorithm is (ε, δ)-differentially private, every membership test
satisfies FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ, so an attack's error rates bound ε
from below: ε ≥ log((1 − δ − FPR) / FNR) and ε ≥ log((1 − δ − FNR) / FPR). The rates are
measured on finitely many samples, so each is replaced by its one-sided Clopper–Pearson upper
bound; the thresholds are chosen without the target's membership labels (the attack's own
decision threshold, calibrated on the shadow side or fixed in advance, and the scores above which
fixed shares of the target's samples lie), and the confidence is split over every rate of every
threshold tried (Bonferroni), so the largest bound over the thresholds holds with the stated
confidence. It is a lower bound from this attack at this sample size, never a guarantee: a model
can leak more than any attack shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import beta

# Shares of the target's samples (ranked by score, no labels) whose lowest score is a threshold.
LABEL_FREE_SHARES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def clopper_pearson_upper(errors: int, trials: int, alpha: float) -> float:
    """One-sided upper confidence bound, at level 1 - ``alpha``, on a rate with ``errors`` of
    ``trials`` (the exact binomial bound)."""
    if trials <= 0:
        raise ValueError("a rate needs at least one trial")
    if errors >= trials:
        return 1.0
    return float(beta.ppf(1.0 - alpha, errors + 1, trials - errors))


def epsilon_from_rates(fpr: float, fnr: float, delta: float) -> float:
    """The largest ε that rates (FPR, FNR) rule out for (ε, δ)-DP, 0 when they rule out none."""
    bounds = [0.0]
    for a, b in ((fpr, fnr), (fnr, fpr)):
        if 1.0 - delta - a > 0.0 and b > 0.0:
            bounds.append(math.log((1.0 - delta - a) / b))
    return max(bounds)


def label_free_thresholds(
    scores: np.ndarray, decision: float, shares: Sequence[float] = LABEL_FREE_SHARES
) -> list[float]:
    """Candidate thresholds chosen without membership labels: the attack's decision threshold,
    then for each share q the lowest score among the top q of the samples (scores: (N,))."""
    ranked = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    picked = [float(decision)]
    for q in shares:
        k = max(1, int(math.ceil(q * len(ranked))))
        picked.append(float(ranked[k - 1]))
    return list(dict.fromkeys(picked))  # equal thresholds are one test


def epsilon_lower_bound(
    scores: np.ndarray,
    members: np.ndarray,
    thresholds: Sequence[float],
    delta: float,
    confidence: float = 0.95,
) -> dict:
    """The empirical ε lower bound of one attack (scores (N,), higher = member; members (N,) 0/1)
    over ``thresholds`` chosen without the labels ("member" at score >= threshold).

    Returns ``epsilon_lower`` (>= 0), ``delta``, ``confidence``, ``thresholds`` (how many were
    tried) and, at the threshold that gives the bound, the measured and upper-bounded rates.
    """
    scores = np.asarray(scores, dtype=np.float64)
    members = np.asarray(members).astype(bool)
    n_in, n_out = int(members.sum()), int((~members).sum())
    alpha = (1.0 - confidence) / (2 * len(thresholds))  # two rates per threshold
    best = None
    for t in thresholds:
        flagged = scores >= t
        fp, fn = int((flagged & ~members).sum()), int((~flagged & members).sum())
        fpr_u = clopper_pearson_upper(fp, n_out, alpha)
        fnr_u = clopper_pearson_upper(fn, n_in, alpha)
        eps = epsilon_from_rates(fpr_u, fnr_u, delta)
        if best is None or eps > best["epsilon_lower"]:
            best = {
                "epsilon_lower": eps,
                "threshold": float(t),
                "fpr": fp / n_out,
                "fnr": fn / n_in,
                "fpr_upper": fpr_u,
                "fnr_upper": fnr_u,
            }
    assert best is not None, "no thresholds"
    return {"delta": delta, "confidence": confidence, "thresholds": len(thresholds), **best}


def per_class_found(
    scores: np.ndarray, members: np.ndarray, labels: np.ndarray, threshold: float
) -> list[dict]:
    """For each class: its members, how many score at or above ``threshold`` (found) and that
    share, most exposed first (scores, members, labels: (N,))."""
    members = np.asarray(members).astype(bool)
    flagged = np.asarray(scores) >= threshold
    rows = []
    for label in np.unique(labels):
        mine = (np.asarray(labels) == label) & members
        found = int((flagged & mine).sum())
        rows.append(
            {
                "label": int(label),
                "members": int(mine.sum()),
                "found": found,
                "tpr": found / max(1, int(mine.sum())),
            }
        )
    return sorted(rows, key=lambda r: (-r["tpr"], r["label"]))


def threshold_at_fpr(scores: np.ndarray, members: np.ndarray, fpr: float) -> float:
    """The lowest threshold whose FPR on these samples is at most ``fpr``: a score above every
    non-member when ``fpr`` allows none. Used to count what an attack finds at a reported rate
    (it reads the labels: evaluation, not an attacker's choice)."""
    members = np.asarray(members).astype(bool)
    out = np.sort(np.asarray(scores, dtype=np.float64)[~members])[::-1]
    allowed = int(math.floor(fpr * len(out) + 1e-9))
    if allowed >= len(out):
        return -math.inf
    return float(np.nextafter(out[allowed], math.inf))  # above the first non-member not allowed


def headline_rates(fpr_targets: Sequence[str]) -> tuple[str, str]:
    """The (low, high) reported rates an owner reads: 0.1% and 1% FPR when the run reports them,
    else its smallest and largest (``eval/metrics.json`` keys)."""
    low = "0.001" if "0.001" in fpr_targets else min(fpr_targets, key=float)
    high = "0.01" if "0.01" in fpr_targets else max(fpr_targets, key=float)
    return low, high


def strongest_attack(reports: dict[str, dict], low: str, high: str) -> str:
    """The attack that finds the most members at the low rate (then at the high rate)."""
    return max(
        reports, key=lambda n: (reports[n]["tpr_at_fpr"][low], reports[n]["tpr_at_fpr"][high])
    )


def privacy_bounds(
    scores: dict[str, np.ndarray],
    decisions: dict[str, float],
    members: np.ndarray,
    delta: float,
    confidence: float = 0.95,
) -> tuple[dict[str, dict], dict]:
    """Each attack's bound at ``confidence``, and the run's: the largest over all the attacks
    with the confidence split over them too, so that it holds at ``confidence`` although the
    best of many attacks was picked. scores: name -> (N,); decisions: name -> its threshold."""
    thresholds = {n: label_free_thresholds(s, decisions[n]) for n, s in scores.items()}
    each = {
        n: epsilon_lower_bound(s, members, thresholds[n], delta, confidence)
        for n, s in scores.items()
    }
    joint = 1.0 - (1.0 - confidence) / len(scores)
    overall = {
        n: epsilon_lower_bound(s, members, thresholds[n], delta, joint)["epsilon_lower"]
        for n, s in scores.items()
    }
    best = max(overall, key=lambda n: overall[n])
    run = {
        "epsilon_lower": overall[best],
        "attack": best,
        "attacks_tested": len(scores),
        "delta": delta,
        "confidence": confidence,
    }
    return each, run


def dp_check(spent: dict, bound: dict) -> dict:
    """The audit of a DP-SGD target: the ε its accountant spent (``spent``, the ``dp`` entry of
    its report) beside the run's empirical lower bound at the same δ (``bound``, from
    ``privacy_bounds``). ``consistent`` is False when the lower bound exceeds the ε spent, which
    a correct DP training and a correct audit allow only with the bound's 5% error chance: it
    points to a broken DP implementation or a broken audit."""
    if bound["delta"] != spent["delta"]:
        raise ValueError("the bound must be computed at the same δ as the DP guarantee")
    return {
        "epsilon_spent": spent["epsilon_spent"],
        "target_epsilon": spent["target_epsilon"],
        "noise_multiplier": spent["noise_multiplier"],
        "max_grad_norm": spent["max_grad_norm"],
        "delta": spent["delta"],
        "epsilon_lower": bound["epsilon_lower"],
        "attack": bound["attack"],
        "attacks_tested": bound["attacks_tested"],
        "confidence": bound["confidence"],
        "consistent": bound["epsilon_lower"] <= spent["epsilon_spent"],
    }


def exposure_table(
    samples: pd.DataFrame, scores: np.ndarray, thresholds: dict[str, float]
) -> pd.DataFrame:
    """Every target sample ranked by the attack's score, riskiest first: rank, sample_id, label,
    member, score, and one ``flagged_at_<rate>`` column per reported rate's threshold."""
    table = samples[["sample_id", "label", "member"]].assign(score=np.asarray(scores))
    for rate, t in thresholds.items():
        table[f"flagged_at_{rate}"] = table["score"] >= t
    table = table.sort_values(["score", "sample_id"], ascending=[False, True], kind="stable")
    return pd.concat(
        [pd.DataFrame({"rank": np.arange(1, len(table) + 1)}), table.reset_index(drop=True)],
        axis=1,
    )
