"""Quantile-regression MIA: the hinge score, the label-conditioned Gaussian head, its loss, and a
fit on synthetic scores whose non-member distribution is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seqmia.attacks.quantile import (
    NllSelection,
    fit_regressor,
    gaussian_nll,
    hinge_scores,
    holdout_rows,
    label_head,
    predicted_gaussians,
    score_quantile,
    standardised_scores,
)
from seqmia.attacks.scoring import RoleData, ScoringInputs
from seqmia.base.roc import auc, roc_curve
from seqmia.training.recipe import Recipe


def test_hinge_is_the_labels_margin_over_the_best_other_class():
    logits = np.array([[2.0, 5.0, 1.0], [2.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    labels = np.array([1, 0, 2])
    np.testing.assert_array_equal(hinge_scores(logits, labels), [3.0, -3.0, 0.0])


def test_label_head_picks_the_labels_pair():
    outputs = torch.arange(12.0).reshape(2, 6)  # 3 classes, pairs (0,1) (2,3) (4,5) per row
    pairs = label_head(outputs, torch.tensor([2, 0]))
    assert pairs.tolist() == [[4.0, 5.0], [6.0, 7.0]]


def test_gaussian_nll_is_least_at_the_samples_mean_and_sd():
    rng = np.random.default_rng(0)
    observed = torch.from_numpy(rng.normal(2.0, 0.5, size=4000))
    mean, sd = observed.mean().item(), observed.std(correction=0).item()

    def nll(mu: float, sigma: float) -> float:
        predicted = torch.tensor([[mu, np.log(sigma)]], dtype=torch.float64).expand(4000, 2)
        return gaussian_nll(predicted, observed).item()

    best = nll(mean, sd)
    for mu, sigma in [(mean + 0.05, sd), (mean - 0.05, sd), (mean, sd * 1.1), (mean, sd * 0.9)]:
        assert nll(mu, sigma) > best


def _synthetic(rng: np.random.Generator, n: int, shift: float) -> tuple:
    """Features (n, 2), labels (n,) in {0, 1} and hinge scores whose non-member distribution is
    N(mu, sigma^2) with mu = 3 x0 + label and log sigma = 0.8 x1; members add ``shift`` sigma."""
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    labels = rng.integers(0, 2, size=n)
    mu, log_sigma = 3.0 * x[:, 0] + labels, 0.8 * x[:, 1]
    hinge = mu + np.exp(log_sigma) * (rng.normal(size=n) + shift)
    return x, labels, hinge, mu, log_sigma


def test_regressor_learns_the_non_member_distribution_and_standardises_it():
    rng = np.random.default_rng(1)
    x, labels, hinge, _, _ = _synthetic(rng, 4000, 0.0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 4))  # 2 classes x (mu, log s)
    recipe = Recipe("adam", 60, 100, 0.01, 0.0, 0.0, "step", 1, 1.0, 0.0)
    fit_rows, held_rows = holdout_rows(len(x), 0.2, torch.Generator().manual_seed(0))
    assert len(held_rows) == 800 and not set(fit_rows) & set(held_rows)
    inputs = torch.from_numpy(x).float()
    selection = NllSelection(inputs[held_rows], labels[held_rows], hinge[held_rows])
    fit_regressor(
        model,
        inputs[fit_rows],
        torch.from_numpy(labels[fit_rows]),
        torch.from_numpy(hinge[fit_rows]),
        recipe,
        torch.Generator().manual_seed(0),
        selection,
    )
    # The kept epoch is the one with the lowest held-out NLL, and the model has its weights.
    nll = [h["val_nll"] for h in selection.history]
    assert len(nll) == 60 and selection.selected == 1 + int(np.argmin(nll))
    mu_h, log_sigma_h = predicted_gaussians(model, inputs[held_rows], labels[held_rows])
    predicted = torch.from_numpy(np.stack([mu_h, log_sigma_h], axis=1))
    assert gaussian_nll(predicted, torch.from_numpy(hinge[held_rows])).item() == pytest.approx(
        min(nll), rel=1e-9
    )
    # Fresh non-members: the prediction is close to the truth, their standardised scores ~ N(0, 1).
    x_new, labels_new, hinge_new, mu_true, log_sigma_true = _synthetic(rng, 4000, 0.0)
    mu, log_sigma = predicted_gaussians(model, torch.from_numpy(x_new).float(), labels_new)
    assert np.abs(mu - mu_true).mean() < 0.15
    assert np.abs(log_sigma - log_sigma_true).mean() < 0.15
    z = standardised_scores(hinge_new, mu, log_sigma)
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.1
    # Members one sigma above: the per-sample standardisation separates them better than the raw
    # hinge, whose spread across samples hides the shift.
    x_in, labels_in, hinge_in, _, _ = _synthetic(rng, 4000, 1.0)
    mu_in, log_sigma_in = predicted_gaussians(model, torch.from_numpy(x_in).float(), labels_in)
    members = np.r_[np.ones(4000), np.zeros(4000)].astype(int)
    standardised = np.r_[standardised_scores(hinge_in, mu_in, log_sigma_in), z]
    raw = np.r_[hinge_in, hinge_new]
    assert auc(roc_curve(standardised, members)) > auc(roc_curve(raw, members)) + 0.08
    assert auc(roc_curve(standardised, members)) == pytest.approx(0.76, abs=0.03)  # Phi(1/sqrt 2)


def _role(members: list[int], fitted: list[float]) -> RoleData:
    n = len(members)
    return RoleData(
        labels=np.zeros(n, int),
        members=np.array(members),
        logits=np.zeros((n, 2)),
        ref_logits=np.zeros((n, 0, 2)),
        ref_out=np.zeros((n, 0), bool),
        population_log_p=np.zeros(0),
        fitted={"quantile_mia": np.array(fitted)},
    )


def test_scorer_takes_the_targets_scores_and_the_shadows_threshold():
    inputs = ScoringInputs(
        target=_role([1, 0, 1, 0], [5.0, -1.0, 0.5, 0.2]),
        shadow=_role([1, 1, 0, 0], [3.0, 2.0, 1.0, -2.0]),
        population_ref_p=np.zeros((0, 0)),
        sequences=np.zeros((4, 1, 1)),
        attack_summary={},
        attack_weights=[],
        settings={},
    )
    (result,) = score_quantile(inputs, "quantile_mia").values()
    np.testing.assert_array_equal(result.scores, [5.0, -1.0, 0.5, 0.2])
    assert result.threshold == 2.0  # the shadow's members 3 and 2 above, its non-members below
