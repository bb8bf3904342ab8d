"""Offline RMIA (seqmia.attacks.rmia) on tiny arrays, against the pairwise definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqmia.attacks.rmia import (
    RmiaInputs,
    offline_marginal,
    population_rows,
    rmia_attack,
    rmia_scores,
    true_class_log_prob,
)


def pairwise_definition(p_x, p_x_refs, x_out, p_z, p_z_refs, a, gamma):
    """RMIA straight from the paper's definition, in probabilities, one pair at a time."""
    scores = []
    for i in range(len(p_x)):
        outs = [p_x_refs[i][k] for k in range(len(p_x_refs[i])) if x_out[i][k]]
        if not outs:
            scores.append(math.nan)
            continue
        px = (1 + a) / 2 * (sum(outs) / len(outs)) + (1 - a) / 2
        count = 0
        for j in range(len(p_z)):
            pz = (1 + a) / 2 * (sum(p_z_refs[j]) / len(p_z_refs[j])) + (1 - a) / 2
            count += (p_x[i] / px) / (p_z[j] / pz) > gamma
        scores.append(count / len(p_z))
    return np.array(scores)


def test_hand_example() -> None:
    # a = 1: p(x) is the OUT mean. x0: 0.9 under the target, 0.3 under the reference (ratio 3);
    # x1: 0.5 vs 0.5 (ratio 1). Population ratios: 0.5, 2, 4.
    scores = rmia_scores(
        np.log([0.9, 0.5]),
        np.array([[0.3], [0.5]]),
        np.ones((2, 1), bool),
        np.log([0.4, 0.8, 0.8]),
        np.array([[0.8], [0.4], [0.2]]),
        a=1.0,
        gamma=1.0,
    )
    np.testing.assert_allclose(scores, [2 / 3, 1 / 3])
    # With gamma = 2, x0 (ratio 3) needs a population ratio below 1.5: only 0.5.
    scores = rmia_scores(
        np.log([0.9, 0.5]),
        np.array([[0.3], [0.5]]),
        np.ones((2, 1), bool),
        np.log([0.4, 0.8, 0.8]),
        np.array([[0.8], [0.4], [0.2]]),
        a=1.0,
        gamma=2.0,
    )
    np.testing.assert_allclose(scores, [1 / 3, 0.0])


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_matches_pairwise_definition_on_random_arrays(a: float, gamma: float) -> None:
    rng = np.random.default_rng(7)
    n, z, k = 13, 17, 3
    p_x, p_z = rng.uniform(0.01, 1, n), rng.uniform(0.01, 1, z)
    p_x_refs, p_z_refs = rng.uniform(0.01, 1, (n, k)), rng.uniform(0.01, 1, (z, k))
    x_out = rng.random((n, k)) < 0.6
    x_out[0] = False  # no OUT reference: cannot be tested offline
    expected = pairwise_definition(p_x, p_x_refs, x_out, p_z, p_z_refs, a, gamma)
    got = rmia_scores(np.log(p_x), p_x_refs, x_out, np.log(p_z), p_z_refs, a, gamma)
    assert np.isnan(got[0]) and np.isnan(expected[0])
    np.testing.assert_allclose(got[1:], expected[1:])


def test_offline_marginal_interpolates_towards_one() -> None:
    p_refs = np.array([[0.2, 0.6], [0.4, 0.9]])
    out = np.array([[True, True], [True, False]])
    np.testing.assert_allclose(offline_marginal(p_refs, out, 1.0), [0.4, 0.4])
    np.testing.assert_allclose(offline_marginal(p_refs, out, 0.0), [0.7, 0.7])
    np.testing.assert_allclose(offline_marginal(p_refs, out, 0.5), [0.55, 0.55])


def test_scores_are_fractions_and_rank_a_memorised_sample_first() -> None:
    # The member: confident under the audited model, unsure under the references.
    p_x = np.array([0.99, 0.6, 0.3])
    p_x_refs = np.array([[0.3], [0.6], [0.3]])
    rng = np.random.default_rng(0)
    p_z = rng.uniform(0.2, 0.9, 50)
    p_z_refs = np.clip(p_z[:, None] + rng.normal(0, 0.05, (50, 1)), 0.05, 1)
    scores = rmia_scores(
        np.log(p_x), p_x_refs, np.ones((3, 1), bool), np.log(p_z), p_z_refs, a=0.3, gamma=1.0
    )
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[0] > scores[1] and scores[0] > scores[2]
    assert scores[0] * 50 == int(scores[0] * 50)  # a count over the population


def test_bad_coefficients_refused() -> None:
    args = (np.log([0.5]), np.array([[0.5]]), np.ones((1, 1), bool), np.log([0.5]), [[0.5]])
    with pytest.raises(ValueError, match="offline coefficient"):
        rmia_scores(*args, a=1.5, gamma=1.0)
    with pytest.raises(ValueError, match="gamma"):
        rmia_scores(*args, a=0.5, gamma=0.0)


def test_true_class_log_prob_is_exact_near_one() -> None:
    logits = np.array([[50.0, 0.0], [0.0, 0.0]])
    got = true_class_log_prob(logits, np.array([0, 1]))
    assert got[0] == pytest.approx(-math.exp(-50), rel=1e-9)  # log(1 - e^-50) ~ -e^-50
    assert got[1] == pytest.approx(math.log(0.5))


def test_population_rows_all_or_a_seeded_sorted_draw() -> None:
    assert population_rows(5, 0, seed=1).tolist() == [0, 1, 2, 3, 4]
    assert population_rows(5, 5, seed=1).tolist() == [0, 1, 2, 3, 4]
    assert population_rows(5, 9, seed=1).tolist() == [0, 1, 2, 3, 4]
    rows = population_rows(100, 10, seed=1)
    assert len(set(rows.tolist())) == 10 and (np.diff(rows) > 0).all() and rows.max() < 100
    assert (population_rows(100, 10, seed=1) == rows).all()
    assert (population_rows(100, 10, seed=2) != rows).any()


def mann_whitney_auc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_rmia_attack_picks_the_best_a_on_the_shadow_model() -> None:
    rng = np.random.default_rng(11)
    n, z, k = 30, 20, 2

    def side(member_boost):
        p_x = np.clip(rng.uniform(0.2, 0.8, n) + member_boost, 0.01, 0.99)
        return dict(
            p_x=p_x,
            p_x_refs=rng.uniform(0.05, 0.95, (n, k)),
            x_out=rng.random((n, k)) < 0.7,
            p_z=rng.uniform(0.05, 0.95, z),
            p_z_refs=rng.uniform(0.05, 0.95, (z, k)),
        )

    members = np.tile([1, 0], n // 2)
    shadow, target = side(0.15 * members), side(0.0)
    shadow["x_out"][0] = False  # no OUT reference: left out of the choice
    candidates = (0.0, 0.5, 1.0)
    testable = shadow["x_out"].any(axis=1)
    aucs = {}
    for a in candidates:
        s = pairwise_definition(*shadow.values(), a, 1.0)
        aucs[a] = mann_whitney_auc(s[testable], members[testable])
    best = max(candidates, key=lambda a: aucs[a])
    assert len(set(aucs.values())) > 1  # the choice matters

    def inputs(d):
        return RmiaInputs(
            np.log(d["p_x"]), d["p_x_refs"], d["x_out"], np.log(d["p_z"]), d["p_z_refs"]
        )

    scores, threshold, chosen = rmia_attack(
        inputs(target), inputs(shadow), members, candidates, 1.0
    )
    assert chosen == {
        "offline_a": best,
        "gamma": 1.0,
        "population": z,
        "shadow_auc": pytest.approx(aucs[best]),
    }
    np.testing.assert_allclose(scores, pairwise_definition(*target.values(), best, 1.0))
    # The threshold is a shadow score that maximises the balanced accuracy there.
    s = pairwise_definition(*shadow.values(), best, 1.0)[testable]
    m = members[testable].astype(bool)

    def balanced(t):
        return 0.5 * ((s[m] >= t - 1e-12).mean() + (s[~m] < t - 1e-12).mean())

    assert balanced(threshold) == pytest.approx(max(balanced(t) for t in [np.inf, *s]))
