"""Fair baselines and honest reporting: per-paper recipes, unsaturated inputs, exact modified
entropy, tie reports, SeqMIA's input transforms and ensembles, the two-panel ROC figure."""

from __future__ import annotations

import copy
import decimal
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from seqmia.attacks.fit import train_attack
from seqmia.attacks.metric import topk_log_posteriors, topk_posteriors
from seqmia.attacks.networks import (
    FlatMLP,
    ensemble_log_odds,
    fit_scaler,
    init_attack_weights,
    loss_like_mask,
    member_log_odds,
)
from seqmia.attacks.seqmia.metrics import compute_metrics
from seqmia.audit.plots import plot_roc_loglog, split_panels
from seqmia.base.roc import attack_report, auc, roc_curve, score_ties
from seqmia.params.schema import ParamsError
from seqmia.params.whole import params_from_dict
from seqmia.training.recipe import Recipe, make_optimizer

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def exact_m_entropy(logits: list[float], label: int) -> float:
    """Modified entropy in 80-digit decimal arithmetic: a reference free of rounding."""
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        z = [decimal.Decimal(v) for v in logits]
        exps = [x.exp() for x in z]
        total = sum(exps)
        p = [e / total for e in exps]
        value = -(1 - p[label]) * p[label].ln()
        value -= sum(p[i] * (1 - p[i]).ln() for i in range(len(p)) if i != label)
        return float(value)


@pytest.mark.parametrize("margin", [2.0, 10.0, 20.0, 40.0, 60.0])
def test_m_entropy_exact_at_extreme_confidence(margin: float) -> None:
    logits = [margin, 0.0, -1.0]
    got = compute_metrics(torch.tensor([logits]), torch.tensor([0]), ["m_entropy"]).item()
    assert got == pytest.approx(exact_m_entropy(logits, 0), rel=1e-9)


def test_m_entropy_exact_when_wrong_with_confidence() -> None:
    logits = [40.0, 0.0, -1.0]  # label 1: p_y tiny, another class near 1
    got = compute_metrics(torch.tensor([logits]), torch.tensor([1]), ["m_entropy"]).item()
    assert got == pytest.approx(exact_m_entropy(logits, 1), rel=1e-9)


def test_topk_log_posteriors_do_not_saturate() -> None:
    # Two confident samples whose top posterior is 1.0 in float32: a tie as probabilities.
    logits = np.array([[30.0, 0.0, 0.0], [32.0, 0.0, 0.0]])
    probs = topk_posteriors(logits, 3).astype(np.float32)
    assert probs[0, 0] == probs[1, 0] == 1.0
    logs = topk_log_posteriors(logits, 3).astype(np.float32)
    assert logs[0, 0] != logs[1, 0] and (logs[:, 0] < 0).all()
    assert logs[1, 0] > logs[0, 0]  # the more confident sample stays closer to log 1 = 0
    moderate = np.array([[0.0, 2.0, 1.0, -1.0]])
    np.testing.assert_allclose(
        topk_log_posteriors(moderate, 2), np.log(topk_posteriors(moderate, 2)), rtol=1e-12
    )


def test_score_ties_by_hand() -> None:
    # Three samples tie at the top: two members and one of four non-members.
    scores = np.array([5.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    labels = np.array([1, 1, 0, 1, 0, 0, 0])
    ties = score_ties(scores, labels, (0.25,))
    assert ties == {"top_tie": 3, "distinct_scores": 5, "straddled_fpr": []}  # ends at 0.25
    assert score_ties(scores, labels, (0.1, 0.25))["straddled_fpr"] == ["0.1"]
    distinct = score_ties(np.arange(7.0)[::-1], labels, (0.1, 0.25))
    assert distinct == {"top_tie": 1, "distinct_scores": 7, "straddled_fpr": []}


def test_tie_of_non_members_only_does_not_straddle() -> None:
    scores = np.array([9.0, 8.0, 8.0, 7.0, 1.0])
    labels = np.array([1, 0, 0, 1, 0])
    ties = score_ties(scores, labels, (0.5,))
    assert ties["top_tie"] == 2 and ties["straddled_fpr"] == []


def test_attack_report_carries_ties() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(200)]
    scores = np.round(rng.normal(size=400) + labels, 1)  # rounding makes ties
    report = attack_report(scores, labels, 0.0, (0.01, 0.1))
    assert report["distinct_scores"] == len(np.unique(scores))
    assert report["top_tie"] >= 1 and isinstance(report["straddled_fpr"], list)


def test_sgd_recipe_with_momentum_trains_an_mlp() -> None:
    recipe = Recipe(
        optimizer="sgd",
        epochs=20,
        batch_size=128,
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="step",
        step_size=100,
        gamma=1.0,
        min_lr=0.0,
    )
    model = init_attack_weights(FlatMLP(6, (32,)), torch.Generator().manual_seed(0))
    optimizer = make_optimizer(model, recipe)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.9
    g = torch.Generator().manual_seed(1)
    y = (torch.arange(600) % 2).long()
    x = torch.randn(600, 6, generator=g) + y[:, None].float()
    model, history, selected = train_attack(
        model,
        x[:400],
        y[:400],
        x[400:],
        y[400:],
        recipe,
        torch.Generator().manual_seed(2),
        selection="best_val_auc",
    )
    assert history[selected - 1].val_auc > 0.85
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(model, Recipe(**{**vars(recipe), "optimizer": "rmsprop"}))


def test_log_loss_metrics_transform() -> None:
    names = ["loss", "max", "entropy"]
    mask = loss_like_mask(names)
    assert mask.tolist() == [True, False, True]
    seq = np.array([[[1e-12, 0.9, 1e-3], [0.0, 0.5, 2.0]]])  # (1, 2, 3)
    scaler = fit_scaler(seq, "log_loss_metrics", mask)
    out = scaler(seq).numpy()
    assert out[0, 0, 0] == pytest.approx(math.log(1e-12), rel=1e-6)
    assert out[0, 1, 0] == pytest.approx(math.log(1e-300), rel=1e-6)  # exact 0 stays finite
    assert out[0, 0, 1] == pytest.approx(0.9) and out[0, 1, 2] == pytest.approx(math.log(2.0))
    both = fit_scaler(seq, "log_loss_metrics_standardize", mask).transform(seq).reshape(-1, 3)
    np.testing.assert_allclose(both.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(both.std(axis=0), 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="loss-like"):
        fit_scaler(seq[..., 1:2], "log_loss_metrics", loss_like_mask(["max"]))
    plain = fit_scaler(seq, "none", mask)
    assert plain.log_mask is None and np.array_equal(plain.transform(seq), seq)


def test_ensemble_log_odds_is_the_mean_and_one_member_is_unchanged() -> None:
    a, b = np.array([1.0, -2.0, 40.0]), np.array([3.0, 0.0, 38.0])
    np.testing.assert_allclose(ensemble_log_odds([a, b]), [2.0, -1.0, 39.0])
    assert np.array_equal(ensemble_log_odds([a]), a)
    with pytest.raises(ValueError):
        ensemble_log_odds([])


def test_ensemble_members_differ_by_seed() -> None:
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    models = [
        init_attack_weights(FlatMLP(4, (8,)), torch.Generator().manual_seed(s)) for s in (1, 2)
    ]
    scores = [member_log_odds(m, x) for m in models]
    assert not np.allclose(scores[0], scores[1])


@pytest.fixture
def raw() -> dict:
    return copy.deepcopy(yaml.safe_load(PARAMS_FILE.read_text()))


def test_default_recipes_are_the_papers(raw: dict) -> None:
    b = params_from_dict(raw).baselines
    t = b.trajectory_mia
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.epochs, t.batch_size) == (
        "sgd",
        0.01,
        0.9,
        1e-4,
        100,
        128,
    )
    assert t.gamma == 1.0  # constant rate
    a = params_from_dict(raw).attack
    s = b.seqmia_ablations
    assert (s.optimizer, s.lr, s.epochs, s.batch_size, s.step_size, s.gamma) == (
        "adam",
        a.lr,
        a.epochs,
        a.batch_size,
        a.step_size,
        a.gamma,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("baselines.trajectory_mia.optimizer", "rmsprop"),
        ("baselines.nn_posterior.momentum", 1.0),
        ("baselines.seqmia_ablations.epochs", 0),
        ("rmia.offline_a", [0.5, 1.5]),
        ("rmia.offline_a", []),
        ("rmia.gamma", 0),
        ("rmia.population", -1),
        ("attack.ensemble", 0),
        ("attack.input_transform", "log"),
    ],
)
def test_bad_values_name_their_key(raw: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        params_from_dict(raw)


def test_missing_recipe_key_is_named(raw: dict) -> None:
    del raw["baselines"]["trajectory_mia"]["lr"]
    with pytest.raises(ParamsError, match=r"baselines\.trajectory_mia\.lr"):
        params_from_dict(raw)


def _curve(seed: int, shift: float):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(300), np.zeros(300)]
    return roc_curve(rng.normal(size=600) + shift * labels, labels)


def test_headline_panel_holds_seqmia_and_each_familys_best(tmp_path: Path) -> None:
    curves = {
        "seqmia": _curve(0, 2.0),
        "seqmia_lstm": _curve(1, 1.9),
        "seqmia_only_loss": _curve(2, 1.5),
        "trajectory_mia": _curve(3, 1.6),
        "nn_posterior": _curve(4, 0.8),
        "loss": _curve(5, 1.0),
        "loss_cc": _curve(6, 1.2),
        "entropy": _curve(7, 0.5),
        "lira_offline": _curve(8, 0.9),
        "rmia_offline": _curve(9, 1.3),
    }
    headline, ablations = split_panels(curves)
    assert headline == ["seqmia", "trajectory_mia", "nn_posterior", "loss_cc", "rmia_offline"]
    assert auc(curves["loss_cc"]) > max(auc(curves["loss"]), auc(curves["entropy"]))
    assert ablations == ["seqmia", "seqmia_lstm", "seqmia_only_loss"]
    path = tmp_path / "roc.png"
    plot_roc_loglog(curves, path, title="test")
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 1.8 * height  # two panels side by side
