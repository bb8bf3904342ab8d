"""LiRA offline on tiny arrays: the statistic, the reference draws and the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seqmia.attacks.lira import (
    attacker_pool,
    logit_scaled_confidence,
    offline_scores,
    out_sd,
    reference_logits_table,
    reference_training_ids,
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


def _partition() -> pd.DataFrame:
    """Target 4 + 4 samples, shadow pool of 12 (two classes, 6 each), distillation 2."""
    roles = ["target_in"] * 4 + ["target_out"] * 4 + ["shadow_in"] * 6 + ["shadow_out"] * 6
    roles += ["distill"] * 2
    ids = np.arange(100, 122)[::-1]  # partition rows need not be in id order
    labels = np.tile([0, 1], 11)
    return pd.DataFrame({"sample_id": ids, "role": roles, "label": labels})


def test_attacker_pool_is_the_sorted_shadow_parts() -> None:
    assert attacker_pool(_partition()).tolist() == list(range(102, 114))


def test_reference_training_ids_draw_target_sized_stratified_sets_from_the_pool() -> None:
    partition = _partition()
    label = partition.set_index("sample_id")["label"]
    pool = set(range(102, 114))
    sets = []
    for index in (1, 2, 3):
        ids, left_out = reference_training_ids(partition, index, 3, seed=4)
        assert len(ids) == 4 and (np.diff(ids) > 0).all() and (np.diff(left_out) > 0).all()
        assert set(ids) | set(left_out) == pool and not set(ids) & set(left_out)
        assert sorted(label[ids].tolist()) == [0, 0, 1, 1]  # the target's class balance
        sets.append(tuple(ids))
    assert len(set(sets)) == 3  # each model its own draw
    # Model 1's set does not depend on how many models there are; another seed draws others.
    assert tuple(reference_training_ids(partition, 1, 5, seed=4)[0]) == sets[0]
    others = {tuple(reference_training_ids(partition, 1, 3, seed=s)[0]) for s in range(5, 10)}
    assert others - {sets[0]}


def test_reference_logits_table_by_hand() -> None:
    attack = {
        "target": (np.array([5, 6]), np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)),
        "shadow": (np.array([8, 9]), np.array([[5.0, 6.0], [7.0, 8.0]], np.float32)),
    }
    population = (np.array([20]), np.array([[9.0, 10.0]], np.float32))
    table = reference_logits_table(attack, population, trained=np.array([9, 20]))
    assert list(table.columns) == ["sample_id", "role", "in_training", "logit_0", "logit_1"]
    assert table["sample_id"].tolist() == [5, 6, 8, 9, 20]
    assert table["role"].tolist() == ["target", "target", "shadow", "shadow", "population"]
    # Population samples are never trained on, whatever ``trained`` says.
    assert table["in_training"].tolist() == [False, False, False, True, False]
    assert table["logit_1"].tolist() == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert table["logit_0"].dtype == np.float32
