"""Metric attacks, class-conditional thresholds, top-k features, bootstrap intervals, attack
architectures and the HTML report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqmia.attack import ATTACK_ARCHITECTURES, build_attack
from seqmia.baselines import (
    class_conditional_scores,
    class_thresholds,
    metric_attack_scores,
    topk_posteriors,
)
from seqmia.evaluation import auc, bootstrap_intervals, roc_curve
from seqmia.report import render_report


def test_metric_attack_scores_are_higher_for_confident_correct_samples() -> None:
    # Sample 0: confident and correct; sample 1: unsure.
    logits = np.log(np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]]))
    scores = metric_attack_scores(logits, np.array([0, 0]))
    assert set(scores) == {"loss", "max_confidence", "entropy", "m_entropy"}
    for name, values in scores.items():
        assert values[0] > values[1], name
    assert scores["loss"][0] == pytest.approx(math.log(0.9))
    assert scores["max_confidence"][1] == pytest.approx(0.4)


def test_class_thresholds_separate_each_class_on_its_own_scale() -> None:
    # Class 0 members score ~10, non-members ~9; class 1 members ~1, non-members ~0.
    scores = np.array([10.0, 10.2, 9.0, 8.9, 1.0, 1.1, 0.0, -0.1])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    members = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    t = class_thresholds(scores, labels, members, num_classes=3)
    assert 9.0 < t[0] <= 10.0 and 0.0 < t[1] <= 1.0
    cc = class_conditional_scores(scores, labels, t)
    assert ((cc >= 0) == members.astype(bool)).all()
    assert auc(roc_curve(cc, members)) == 1.0 > auc(roc_curve(scores, members))
    assert np.isfinite(t[2])  # a class absent from calibration falls back to the global one


def test_topk_posteriors_sorted_and_sum_at_most_one() -> None:
    logits = np.array([[0.0, 2.0, 1.0, -1.0]])
    top = topk_posteriors(logits, 2)
    probs = torch.softmax(torch.tensor(logits), 1).numpy()[0]
    assert top.shape == (1, 2)
    np.testing.assert_allclose(top[0], [probs[1], probs[2]])
    assert topk_posteriors(logits, 10).shape == (1, 4)


def test_bootstrap_intervals_bracket_the_point_estimate_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(300), np.zeros(300)]
    scores = rng.normal(size=600) + labels
    ci = bootstrap_intervals(scores, labels, (0.01, 0.1), n_boot=200, seed=3)
    point = auc(roc_curve(scores, labels))
    assert ci["auc"][0] < point < ci["auc"][1]
    assert ci["auc"][1] - ci["auc"][0] < 0.15
    assert set(ci["tpr_at_fpr"]) == {"0.01", "0.1"}
    assert ci == bootstrap_intervals(scores, labels, (0.01, 0.1), n_boot=200, seed=3)


@pytest.mark.parametrize("architecture", ATTACK_ARCHITECTURES)
def test_every_attack_architecture_maps_sequences_to_two_logits(architecture: str) -> None:
    model = build_attack(architecture, (6, 5), hidden_size=8)
    assert model(torch.randn(4, 6, 5)).shape == (4, 2)


def test_mlp_attack_takes_flat_features_with_given_widths() -> None:
    model = build_attack("mlp", (3,), mlp_widths=(64,))
    assert model(torch.randn(7, 3)).shape == (7, 2)
    assert sum(p.numel() for p in model.parameters()) == 3 * 64 + 64 + 64 * 2 + 2


def test_report_is_self_contained_html_with_every_attack() -> None:
    entry = {
        "auc": 0.9, "balanced_accuracy": 0.8,
        "tpr_at_fpr": {"0.001": 0.1, "0.01": 0.3},
        "nonmembers_at_fpr": {"0.001": 0.5, "0.01": 5.0},
        "n_members": 500, "n_nonmembers": 500,
        "ci95": {"auc": [0.88, 0.92], "tpr_at_fpr": {"0.001": [0.0, 0.2], "0.01": [0.2, 0.4]}},
    }  # fmt: skip
    metrics = {
        "attacks": {"seqmia": entry, "loss": {**entry, "auc": 0.7}},
        "models": {"target": {"train_accuracy": 1.0, "test_accuracy": 0.5}},
    }
    page = render_report(metrics, b"\x89PNG fake", {"seed": 0})
    assert page.startswith("<!doctype html>")
    assert "seqmia" in page and "loss" in page and "[0.8800, 0.9200]" in page
    assert "unresolved" in page  # 0.1% of 500 non-members is half a sample
    assert page.index("seqmia") < page.index(">loss<")  # ranked by AUC
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
