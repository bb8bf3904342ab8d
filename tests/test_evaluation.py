"""ROC, AUC, TPR at fixed FPR and balanced accuracy against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest

from seqmia.base.roc import (
    attack_report,
    auc,
    balanced_accuracy,
    best_threshold,
    interpolated_tpr_at_fpr,
    members_above_every_nonmember,
    roc_curve,
    tpr_at_fpr,
)

FPR_TARGETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0)


@pytest.fixture(scope="module")
def tied_scores() -> tuple[np.ndarray, np.ndarray]:
    """~200 scores with many ties (one decimal), members scoring a bit higher."""
    rng = np.random.default_rng(2024)
    labels = rng.integers(0, 2, size=200)
    scores = np.round(rng.normal(size=200) + 0.7 * labels, 1)
    assert len(np.unique(scores)) < 100  # plenty of ties
    return scores, labels


def brute_force_roc(scores, labels):
    """(threshold, fpr, tpr) of ``score >= t`` for t = +inf and every distinct score."""
    pos, neg = labels == 1, labels == 0
    points = []
    for t in [np.inf, *sorted(np.unique(scores), reverse=True)]:
        pred = scores >= t
        points.append((t, (pred & neg).sum() / neg.sum(), (pred & pos).sum() / pos.sum()))
    return points


def mann_whitney(scores, labels):
    member, non = scores[labels == 1], scores[labels == 0]
    diff = member[:, None] - non[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_roc_matches_brute_force(tied_scores):
    scores, labels = tied_scores
    roc = roc_curve(scores, labels)
    expected = brute_force_roc(scores, labels)
    np.testing.assert_array_equal(roc.thresholds, [t for t, _, _ in expected])
    np.testing.assert_allclose(roc.fpr, [f for _, f, _ in expected], rtol=0, atol=1e-12)
    np.testing.assert_allclose(roc.tpr, [t for _, _, t in expected], rtol=0, atol=1e-12)
    assert roc.fpr[0] == 0 and roc.tpr[0] == 0
    assert roc.fpr[-1] == 1 and roc.tpr[-1] == 1
    assert (np.diff(roc.fpr) >= 0).all() and (np.diff(roc.tpr) >= 0).all()


def test_roc_does_not_depend_on_input_order(tied_scores):
    scores, labels = tied_scores
    perm = np.random.default_rng(1).permutation(len(scores))
    a, b = roc_curve(scores, labels), roc_curve(scores[perm], labels[perm])
    np.testing.assert_array_equal(a.fpr, b.fpr)
    np.testing.assert_array_equal(a.tpr, b.tpr)


def test_auc_equals_mann_whitney(tied_scores):
    scores, labels = tied_scores
    assert auc(roc_curve(scores, labels)) == pytest.approx(mann_whitney(scores, labels), abs=1e-12)


def test_auc_of_all_tied_scores_is_half():
    scores = np.zeros(10)
    labels = np.array([0, 1] * 5)
    assert auc(roc_curve(scores, labels)) == pytest.approx(0.5)


def test_auc_perfect_and_reversed():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auc(roc_curve(scores, labels)) == pytest.approx(1.0)
    assert auc(roc_curve(-scores, labels)) == pytest.approx(0.0)


@pytest.mark.parametrize("target", FPR_TARGETS)
def test_conservative_tpr_at_fpr_matches_brute_force(tied_scores, target):
    scores, labels = tied_scores
    expected = max(tpr for _, fpr, tpr in brute_force_roc(scores, labels) if fpr <= target)
    assert tpr_at_fpr(roc_curve(scores, labels), target) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("target", FPR_TARGETS)
def test_interpolated_tpr_is_at_least_conservative(tied_scores, target):
    scores, labels = tied_scores
    roc = roc_curve(scores, labels)
    assert interpolated_tpr_at_fpr(roc, target) >= tpr_at_fpr(roc, target) - 1e-12


def test_tpr_at_fpr_does_not_interpolate():
    # Two members tie with a non-member at 0.5: the ROC jumps from (0, 0) to (0.5, 1). The only
    # point with FPR <= 0.25 is (0, 0); interpolating the jump would claim TPR 0.5.
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    labels = np.array([1, 0, 1, 0])
    roc = roc_curve(scores, labels)
    np.testing.assert_array_equal(roc.fpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(roc.tpr, [0.0, 1.0, 1.0])
    assert tpr_at_fpr(roc, 0.25) == 0.0
    assert interpolated_tpr_at_fpr(roc, 0.25) == pytest.approx(0.5)


def test_roc_rejects_one_class_and_non_finite():
    with pytest.raises(ValueError):
        roc_curve(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError):
        roc_curve(np.array([0.1, np.nan]), np.array([0, 1]))


def test_balanced_accuracy_by_hand():
    labels = np.array([1, 1, 1, 1, 0, 0])
    predicted = np.array([1, 1, 1, 0, 1, 0])
    # TPR = 3/4, TNR = 1/2
    assert balanced_accuracy(predicted, labels) == pytest.approx(0.5 * (0.75 + 0.5))
    assert balanced_accuracy(labels, labels) == 1.0
    assert balanced_accuracy(1 - labels, labels) == 0.0


def test_best_threshold_by_hand():
    scores = np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    # >= 0.5 catches every member and one non-member of four: BA = (1 + 3/4) / 2.
    t = best_threshold(scores, labels)
    assert t == 0.5
    assert balanced_accuracy(scores >= t, labels) == pytest.approx(0.875)


def test_best_threshold_maximises_balanced_accuracy(tied_scores):
    scores, labels = tied_scores
    t = best_threshold(scores, labels)
    best = max(balanced_accuracy(scores >= c, labels) for c in [np.inf, *np.unique(scores)])
    assert balanced_accuracy(scores >= t, labels) == pytest.approx(best, abs=1e-12)


def test_attack_report(tied_scores):
    scores, labels = tied_scores
    report = attack_report(scores, labels, threshold=0.5, fpr_targets=(0.001, 0.01))
    assert {"auc", "balanced_accuracy", "tpr_at_fpr", "n_members", "n_nonmembers"} <= set(report)
    assert set(report["tpr_at_fpr"]) == {"0.001", "0.01"}
    roc = roc_curve(scores, labels)
    assert report["auc"] == pytest.approx(auc(roc))
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy(scores >= 0.5, labels))
    assert report["tpr_at_fpr"]["0.01"] == pytest.approx(tpr_at_fpr(roc, 0.01))
    assert report["n_members"] == int(labels.sum())
    assert report["n_nonmembers"] == int((labels == 0).sum())
    assert report["nonmembers_at_fpr"]["0.01"] == pytest.approx(0.01 * report["n_nonmembers"])


def test_members_above_every_nonmember_by_hand():
    # Non-members top out at 0.7; members 0.9 and 0.8 clear it, the member tied at 0.7 does not.
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.7, 0.5, 0.2])
    labels = np.array([1, 1, 1, 1, 0, 0, 0])
    assert members_above_every_nonmember(scores, labels) == 2
    report = attack_report(scores, labels, threshold=0.5, fpr_targets=(0.01,))
    assert report["members_above_every_nonmember"] == 2
    assert report["tpr_at_zero_fpr"] == pytest.approx(2 / 4)
    # The conservative ROC agrees: the last point with FPR 0 has TPR 2/4.
    assert tpr_at_fpr(roc_curve(scores, labels), 0.0) == pytest.approx(2 / 4)


def test_members_above_every_nonmember_matches_brute_force(tied_scores):
    scores, labels = tied_scores
    top = max(s for s, y in zip(scores, labels, strict=True) if y == 0)
    expected = sum(1 for s, y in zip(scores, labels, strict=True) if y == 1 and s > top)
    assert members_above_every_nonmember(scores, labels) == expected
