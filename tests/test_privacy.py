"""The empirical privacy bound and the exposure counts, on synthetic scores with known rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqmia.audit.privacy import (
    clopper_pearson_upper,
    epsilon_from_rates,
    epsilon_lower_bound,
    label_free_thresholds,
    per_class_found,
    threshold_at_fpr,
)


def test_clopper_pearson_upper_bound_matches_its_closed_forms() -> None:
    # No error in n trials: the bound p solves (1 - p)^n = alpha.
    assert clopper_pearson_upper(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100))
    # n - 1 errors: the bound p solves 1 - p^n = alpha.
    assert clopper_pearson_upper(99, 100, 0.05) == pytest.approx(0.95 ** (1 / 100))
    assert clopper_pearson_upper(100, 100, 0.05) == 1.0  # every trial an error
    assert clopper_pearson_upper(10, 100, 0.05) > 0.10  # above the measured rate


def test_epsilon_from_rates_is_the_dp_inequality() -> None:
    assert epsilon_from_rates(0.01, 0.5, 0.0) == pytest.approx(math.log(50))
    assert epsilon_from_rates(0.5, 0.5, 0.0) == 0.0  # a coin flip rules nothing out
    assert epsilon_from_rates(0.0, 0.0, 0.0) == 0.0  # upper bounds are never 0; no division
    assert epsilon_from_rates(0.2, 0.3, 1e-5) == pytest.approx(math.log((0.7 - 1e-5) / 0.2))


def test_bound_approaches_the_measured_rates_with_many_samples() -> None:
    """1% of non-members and 50% of members above a threshold of 0.5: eps -> log(0.5 / 0.01)."""
    n = 200_000
    members = np.r_[np.ones(n), np.zeros(n)]
    scores = np.r_[np.arange(n) < n // 2, np.arange(n) < n // 100].astype(float)
    result = epsilon_lower_bound(scores, members, [0.5], 1e-5)
    assert result["fpr"] == 0.01 and result["fnr"] == 0.5
    assert math.log(50) - 0.1 < result["epsilon_lower"] < math.log(50)
    assert result["thresholds"] == 1 and result["confidence"] == 0.95


def test_bound_stays_below_the_true_epsilon_of_randomized_response() -> None:
    """Randomized response answers "member" with probability e^eps / (1 + e^eps) for members and
    1 / (1 + e^eps) for non-members: exactly eps-DP. The 95% bound may exceed eps in at most 5%
    of repeats (with the Bonferroni split over thresholds, far fewer)."""
    eps, n, repeats = 1.0, 2500, 200
    p = math.exp(eps) / (1 + math.exp(eps))
    rng = np.random.default_rng(0)
    bounds = []
    for _ in range(repeats):
        members = np.r_[np.ones(n), np.zeros(n)]
        scores = np.r_[rng.random(n) < p, rng.random(n) < 1 - p].astype(float)
        thresholds = label_free_thresholds(scores, 0.5)
        bounds.append(epsilon_lower_bound(scores, members, thresholds, 0.0)["epsilon_lower"])
    bounds = np.array(bounds)
    assert (bounds > eps).mean() <= 0.05
    assert bounds.mean() > 0.7 * eps  # and it is not vacuous


def test_label_free_thresholds_use_no_labels_and_drop_repeats() -> None:
    scores = np.arange(1000, dtype=float)
    picked = label_free_thresholds(scores, 500.0, shares=(0.001, 0.01, 0.5))
    assert picked == [500.0, 999.0, 990.0]  # 0.5 -> the top 500's lowest: 500, already there


def test_exposure_counts_per_class_at_a_threshold() -> None:
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.95, 0.3])
    members = np.array([1, 1, 1, 1, 0, 0, 0])
    labels = np.array([0, 0, 1, 1, 0, 1, 1])
    threshold = threshold_at_fpr(scores, members, 0.0)  # above every non-member (0.95)
    assert 0.95 < threshold < 0.9500001
    assert threshold_at_fpr(scores, members, 1 / 3) == pytest.approx(0.3, abs=1e-12)
    rows = per_class_found(scores, members, labels, 0.75)
    assert rows == [
        {"label": 0, "members": 2, "found": 2, "tpr": 1.0},
        {"label": 1, "members": 2, "found": 0, "tpr": 0.0},
    ]
