"""LiRA offline on tiny arrays: the statistic, the reference draws and the score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqmia.lira import (
    logit_scaled_confidence,
    offline_scores,
    out_sd,
    reference_training_sets,
)


def test_logit_scaled_confidence_matches_its_definition() -> None:
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.0]])
    labels = np.array([0, 2, 1])
    p = torch.softmax(torch.tensor(logits), dim=1).numpy()[np.arange(3), labels]
    assert np.allclose(logit_scaled_confidence(logits, labels), np.log(p / (1 - p)))


def test_logit_scaled_confidence_stays_finite_where_the_posterior_rounds_to_one() -> None:
    logits = np.array([[60.0, 0.0], [0.0, 60.0]])
    phi = logit_scaled_confidence(logits, np.array([0, 0]))
    assert np.allclose(phi, [60.0, -60.0])  # p_y = 1 - 1e-26 would give inf via probabilities


def test_reference_training_sets_are_stratified_draws_of_the_asked_size() -> None:
    labels = np.repeat([0, 1, 2], [40, 40, 20])
    inside = reference_training_sets(labels, 50, 4, np.random.default_rng(0))
    assert inside.shape == (4, 100) and (inside.sum(axis=1) == 50).all()
    for row in inside:
        assert [row[labels == c].sum() for c in range(3)] == [20, 20, 10]
    assert len({row.tobytes() for row in inside}) == 4  # independent draws
    assert (~inside).any(axis=0).mean() > 0.9  # nearly every sample is left out somewhere


def test_reference_training_sets_of_the_first_models_do_not_depend_on_how_many() -> None:
    labels = np.repeat([0, 1], 30)
    two = reference_training_sets(labels, 30, 2, np.random.default_rng(5))
    five = reference_training_sets(labels, 30, 5, np.random.default_rng(5))
    assert (two == five[:2]).all()


def test_reference_training_sets_refuse_a_draw_larger_than_the_pool() -> None:
    with pytest.raises(ValueError, match="pool"):
        reference_training_sets(np.zeros(10, dtype=int), 11, 1, np.random.default_rng(0))


def test_offline_scores_use_only_out_references() -> None:
    phi = np.array([3.0, 1.0, 0.0])
    refs = np.array([[1.0, 100.0], [2.0, 0.0], [5.0, 5.0]])
    out = np.array([[True, False], [True, True], [False, False]])
    scores = offline_scores(phi, refs, out, sd=2.0)
    assert scores[0] == pytest.approx((3.0 - 1.0) / 2.0)  # the IN reference (100) is ignored
    assert scores[1] == pytest.approx((1.0 - 1.0) / 2.0)
    assert np.isnan(scores[2])  # no OUT reference: not testable offline


def test_offline_scores_rank_like_the_one_sided_gaussian_test() -> None:
    rng = np.random.default_rng(0)
    phi, refs = rng.normal(size=50), rng.normal(size=(50, 3))
    out = np.ones((50, 3), dtype=bool)
    sd = out_sd(refs, out)
    scores = offline_scores(phi, refs, out, sd)
    # Pr[Z <= phi] for Z ~ N(mean, sd^2), via the error function
    cdf = 0.5 * (1 + torch.erf(torch.tensor((phi - refs.mean(1)) / (sd * np.sqrt(2))))).numpy()
    assert (np.argsort(scores) == np.argsort(cdf)).all()


def test_out_sd_pools_every_out_value_and_needs_two() -> None:
    refs = np.array([[1.0, 9.0], [3.0, 9.0]])
    out = np.array([[True, False], [True, False]])
    assert out_sd(refs, out) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two"):
        out_sd(refs, np.array([[True, False], [False, False]]))
