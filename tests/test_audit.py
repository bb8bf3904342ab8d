"""The evaluation protocol (seqmia.audit.protocol) on tiny arrays and frames, against hand
computations."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from seqmia.attacks.fit import seqmia_log_odds
from seqmia.attacks.lira import score_lira_offline
from seqmia.attacks.networks import build_attack, member_log_odds
from seqmia.attacks.registry import ATTACKS
from seqmia.attacks.rmia import true_class_prob
from seqmia.attacks.scoring import RoleData, ScoringInputs, per_reference
from seqmia.audit.costs import Work
from seqmia.audit.protocol import (
    AuditInputs,
    attack_reports,
    audit,
    headline_metrics,
    in_order,
    logit_array,
    model_accuracies,
    reference_logits,
    summary_line,
    tie_warning,
)


def _role(logits, labels, members, ref_logits=None, ref_out=None) -> RoleData:
    """A role's side of ``ScoringInputs`` with what a test needs (empty references otherwise)."""
    n = len(labels)
    return RoleData(
        labels=np.asarray(labels),
        members=np.asarray(members),
        logits=np.asarray(logits, float),
        ref_logits=np.zeros((n, 0, 2)) if ref_logits is None else np.asarray(ref_logits, float),
        ref_out=np.zeros((n, 0), bool) if ref_out is None else np.asarray(ref_out, bool),
        population_log_p=np.zeros(0),
    )


def _inputs(target: RoleData, shadow: RoleData) -> ScoringInputs:
    return ScoringInputs(
        target=target,
        shadow=shadow,
        population_ref_p=np.zeros((0, 0)),
        sequences=np.zeros((len(target.labels), 0, 0)),
        attack_summary={},
        attack_weights=[],
        settings={},
    )


def balanced_accuracy_by_hand(scores, members, t) -> float:
    predicted = [s >= t - 1e-9 for s in scores]  # scores recomputed here differ in the last bit
    pos = [p for p, m in zip(predicted, members, strict=True) if m]
    neg = [not p for p, m in zip(predicted, members, strict=True) if not m]
    return 0.5 * (sum(pos) / len(pos) + sum(neg) / len(neg))


def best_balanced_accuracy(scores, members) -> float:
    """The highest balanced accuracy of ``score >= t`` over every candidate threshold."""
    candidates = [math.inf, *scores]
    return max(balanced_accuracy_by_hand(scores, members, t) for t in candidates)


def test_logit_array_and_in_order() -> None:
    frame = pd.DataFrame(
        {
            "sample_id": [7, 3, 5],
            "label": [0, 1, 0],
            "logit_0": [1.0, 2.0, 3.0],
            "logit_1": np.array([4.0, 5.0, 6.0], np.float32),
        }
    )
    ordered = in_order(pd.DataFrame({"sample_id": [5, 7, 3]}), frame)
    assert ordered["sample_id"].tolist() == [5, 7, 3]
    assert ordered["label"].tolist() == [0, 0, 1]
    got = logit_array(ordered)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[3.0, 6.0], [1.0, 4.0], [2.0, 5.0]])


def test_in_order_refuses_a_duplicated_sample() -> None:
    frame = pd.DataFrame({"sample_id": [1, 1], "logit_0": [0.0, 1.0]})
    with pytest.raises(pd.errors.MergeError):
        in_order(pd.DataFrame({"sample_id": [1]}), frame)


def test_reference_logits_pick_the_role_and_order_and_the_out_mask() -> None:
    def frame(offset: float, trained: list[bool]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "sample_id": [1, 2, 1, 9],
                "role": ["target", "target", "shadow", "population"],
                "in_training": [False, False, trained[0], trained[1]],
                "logit_0": [offset + 1, offset + 2, offset + 3, offset + 4],
                "logit_1": [0.0] * 4,
            }
        )

    frames = [frame(0.0, [True, False]), frame(10.0, [False, False])]
    order = pd.DataFrame({"sample_id": [2, 1], "label": [1, 0]})
    logits, out = reference_logits(frames, "target", order)
    assert logits.shape == (2, 2, 2) and out.shape == (2, 2)
    np.testing.assert_array_equal(logits[:, :, 0], [[2.0, 12.0], [1.0, 11.0]])
    assert out.all()
    logits, out = reference_logits(frames, "shadow", order.iloc[[1]])
    np.testing.assert_array_equal(logits[:, :, 0], [[3.0, 13.0]])
    np.testing.assert_array_equal(out, [[False, True]])  # model 1 trained on sample 1


def test_per_reference_applies_the_statistic_to_each_model() -> None:
    logits = np.arange(12.0).reshape(2, 3, 2)  # (N=2, K=3, C=2)
    labels = np.array([1, 0])
    got = per_reference(lambda z, y: z[np.arange(len(y)), y], logits, labels)
    np.testing.assert_array_equal(got, [[1.0, 3.0, 5.0], [6.0, 8.0, 10.0]])


def test_true_class_prob_is_the_softmax_entry() -> None:
    logits = np.array([[0.0, math.log(3.0)], [2.0, 2.0]])
    np.testing.assert_allclose(true_class_prob(logits, np.array([1, 0])), [0.75, 0.5])


def test_metric_attacks_raw_and_class_conditional() -> None:
    # Two classes, confident logits for members; loss is cross-entropy by hand.
    t_logits = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 4.0]])
    t_labels = np.array([0, 1, 0, 1])
    s_logits = np.array([[4.0, 0.0], [0.5, 0.0], [0.0, 3.0], [0.0, 0.2], [2.0, 0.0], [0.0, 1.0]])
    s_labels = np.array([0, 0, 1, 1, 0, 1])
    s_members = np.array([1, 0, 1, 0, 1, 0])
    inputs = _inputs(_role(t_logits, t_labels, [1, 0, 1, 0]), _role(s_logits, s_labels, s_members))
    results = {}
    for name, attack in ATTACKS.items():
        if attack.family == "metric":
            results.update(attack.score(inputs, name))
    scores = {name: r.scores for name, r in results.items()}
    thresholds = {name: r.threshold for name, r in results.items()}
    assert set(scores) == {
        f"{m}{cc}" for m in ("loss", "max_confidence", "entropy", "m_entropy") for cc in ("", "_cc")
    }

    def neg_loss(logits, labels):
        return [-(np.log(np.exp(z).sum()) - z[y]) for z, y in zip(logits, labels, strict=True)]

    np.testing.assert_allclose(scores["loss"], neg_loss(t_logits, t_labels))
    shadow = neg_loss(s_logits, s_labels)
    # The loss threshold reaches the best balanced accuracy on the shadow samples.
    assert balanced_accuracy_by_hand(shadow, s_members, thresholds["loss"]) == pytest.approx(
        best_balanced_accuracy(shadow, s_members)
    )
    assert thresholds["loss_cc"] == 0.0
    # Class-conditional: each class's threshold separates that class's shadow samples, and the
    # target score is the distance past it.
    for c in (0, 1):
        rows = s_labels == c
        class_scores = [s for s, r in zip(shadow, rows, strict=True) if r]
        t_class = scores["loss"][t_labels == c] - scores["loss_cc"][t_labels == c]
        assert np.ptp(t_class) == pytest.approx(0.0)  # one threshold per class
        assert balanced_accuracy_by_hand(class_scores, s_members[rows], t_class[0]) == 1.0


def _logits_of_phi(phi: np.ndarray) -> np.ndarray:
    """Two-class logits whose class-0 logit-scaled confidence is ``phi``: (..., 2)."""
    return np.stack([phi, np.zeros_like(phi)], axis=-1)


def test_lira_offline_by_hand() -> None:
    # Shadow: 4 samples, 2 references. OUT values 1, 3 (sample 0), 2 (sample 1), 0 (sample 2);
    # sample 3 has no OUT reference and is skipped. Every sample is of class 0, so phi is the
    # first logit minus the second.
    s_refs = np.array([[1.0, 3.0], [2.0, 9.0], [9.0, 0.0], [9.0, 9.0]])
    s_out = np.array([[True, True], [True, False], [False, True], [False, False]])
    sd = np.std([1.0, 3.0, 2.0, 0.0])
    phi_shadow = np.array([6.0, 2.0, 5.0, 100.0])
    members = np.array([1, 0, 1, 0])
    t_refs = np.array([[1.0, 2.0], [4.0, 4.0]])
    target = _role(
        _logits_of_phi(np.array([3.0, 0.0])),
        [0, 0],
        [1, 0],
        _logits_of_phi(t_refs),
        np.ones((2, 2), bool),
    )
    shadow = _role(_logits_of_phi(phi_shadow), [0] * 4, members, _logits_of_phi(s_refs), s_out)
    result = score_lira_offline(_inputs(target, shadow), "lira_offline")["lira_offline"]
    scores, threshold = result.scores, result.threshold
    np.testing.assert_allclose(scores, [(3.0 - 1.5) / sd, (0.0 - 4.0) / sd])
    shadow_scores = [(6.0 - 2.0) / sd, 0.0, 5.0 / sd]  # members 1, 0, 1
    # The lowest threshold that keeps the non-member out: the lower member score.
    assert threshold == pytest.approx(min(shadow_scores[0], shadow_scores[2]))


def test_attack_reports_by_hand() -> None:
    members = np.array([1, 1, 0, 0])
    scores = {"a": np.array([0.9, 0.2, 0.5, 0.1]), "b": np.array([1.0, 1.0, 1.0, 0.0])}
    reports, curves = attack_reports(scores, {"a": 0.3, "b": 0.5}, members, (0.5,), 0, 0)
    assert list(reports) == ["a", "b"] and "ci95" not in reports["a"]
    assert reports["a"]["auc"] == pytest.approx(0.75)  # 3 of 4 member/non-member pairs right
    assert reports["a"]["balanced_accuracy"] == pytest.approx(0.5 * (0.5 + 0.5))
    # ROC of a: (0,0) (0,.5) (.5,.5) (.5,1) (1,1); at FPR 0.5 the conservative TPR is 1.
    assert reports["a"]["tpr_at_fpr"]["0.5"] == 1.0
    assert reports["b"]["auc"] == pytest.approx(0.75)  # the tie at 1.0 counts half
    # Interpolated between (0, 0) and (0.5, 1) of b's ROC at FPR 0.25: 0.5.
    reports, _ = attack_reports(scores, {"a": 0.3, "b": 0.5}, members, (0.25,), 0, 0)
    assert reports["b"]["interpolated_tpr_at_fpr"]["0.25"] == pytest.approx(0.5)
    np.testing.assert_allclose(curves["b"].fpr, [0.0, 0.5, 1.0])


def test_attack_reports_bootstrap_per_attack() -> None:
    rng = np.random.default_rng(3)
    members = np.repeat([1, 0], 20)
    values = rng.normal(size=40) + members
    scores = {"a": values, "b": values.copy()}
    reports, _ = attack_reports(scores, {"a": 0.0, "b": 0.0}, members, (0.1,), 30, 7)
    lo, hi = reports["a"]["ci95"]["auc"]
    assert lo <= reports["a"]["auc"] <= hi and lo < hi
    # Same scores, another attack name: its own draws, so other intervals.
    assert reports["a"]["ci95"] != reports["b"]["ci95"]
    again, _ = attack_reports(scores, {"a": 0.0, "b": 0.0}, members, (0.1,), 30, 7)
    assert again["a"]["ci95"] == reports["a"]["ci95"]


def test_model_accuracies_keep_the_two_accuracies() -> None:
    reports = {
        "target": {"train_accuracy": 1.0, "test_accuracy": 0.5, "history": []},
        "reference_1": {"train_accuracy": 0.9, "test_accuracy": 0.4, "model": "x"},
    }
    assert model_accuracies(reports) == {
        "target": {"train_accuracy": 1.0, "test_accuracy": 0.5},
        "reference_1": {"train_accuracy": 0.9, "test_accuracy": 0.4},
    }


def test_tie_warning_and_summary_line() -> None:
    report = {
        "straddled_fpr": [],
        "top_tie": 3,
        "distinct_scores": 9,
        "auc": 0.61234,
        "balanced_accuracy": 0.5,
        "tpr_at_fpr": {"0.01": 0.02, "0.1": 0.25},
    }
    assert tie_warning("x", report) is None
    warning = tie_warning("x", {**report, "straddled_fpr": ["0.01", "0.1"]})
    assert warning.startswith("x: a tie of scores straddles FPR 0.01, 0.1 (top tie 3 samples,")
    line = summary_line("seqmia", report)
    assert line.startswith("seqmia" + " " * 20 + " AUC 0.6123  bal.acc 0.5000")
    assert line.endswith("TPR@0.01 0.0200  TPR@0.1 0.2500")


def _attack(seed: int, shape: tuple[int, int]) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_attack("attention_lstm", shape, 4, 1).state_dict()


def test_seqmia_log_odds_scale_then_average_the_members() -> None:
    rng = np.random.default_rng(0)
    sequences = rng.uniform(0, 2, (5, 3, 2))
    summary = {
        "architecture": "attention_lstm",
        "hidden_size": 4,
        "num_layers": 1,
        "scaler_shift": [1.0, 0.5],
        "scaler_scale": [2.0, 4.0],
    }
    weights = [_attack(1, (3, 2)), _attack(2, (3, 2))]
    x = torch.from_numpy(((sequences - [1.0, 0.5]) / [2.0, 4.0]).astype(np.float32))
    each = []
    for state in weights:
        model = build_attack("attention_lstm", (3, 2), 4, 1)
        model.load_state_dict(state)
        each.append(member_log_odds(model, x))
    np.testing.assert_allclose(seqmia_log_odds(summary, weights[:1], sequences), each[0])
    np.testing.assert_allclose(
        seqmia_log_odds(summary, weights, sequences), (each[0] + each[1]) / 2
    )


def _tiny_inputs(rng: np.random.Generator) -> AuditInputs:
    """Every artefact of the evaluate stage for 8 target, 8 shadow and 6 population samples,
    3 classes, 2 snapshots of 2 metrics and 2 reference models."""
    roles = {"target": np.arange(8), "shadow": np.arange(100, 108)}
    member = np.tile([1, 0], 4)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    logits = lambda n: {f"logit_{c}": rng.normal(size=n) for c in range(3)}  # noqa: E731
    final = {
        r: pd.DataFrame({"sample_id": ids, "member": member, "label": labels, **logits(8)})
        for r, ids in roles.items()
    }
    pop_ids, pop_labels = np.arange(200, 206), np.array([0, 1, 2, 0, 1, 2])
    population = {
        r: pd.DataFrame({"sample_id": pop_ids, "label": pop_labels, **logits(6)}) for r in roles
    }
    refs = []
    for k in range(2):
        parts = [
            pd.DataFrame({"sample_id": ids, "role": r, "in_training": False, **logits(8)})
            for r, ids in roles.items()
        ]
        parts[1]["in_training"] = np.arange(8) % 2 == k  # each shadow sample IN for one model
        parts.append(
            pd.DataFrame(
                {"sample_id": pop_ids, "role": "population", "in_training": False, **logits(6)}
            )
        )
        refs.append(pd.concat(parts, ignore_index=True))
    sequences = pd.DataFrame(
        {
            "sample_id": np.repeat(roles["target"][::-1], 2),
            "part": "target_in",
            "member": np.repeat(member[::-1], 2),
            "label": np.repeat(labels[::-1], 2),
            "snapshot": np.tile([1, 2], 8),
            "loss": rng.uniform(size=16),
            "max": rng.uniform(size=16),
        }
    )
    summary = {
        "metrics": ["loss", "max"],
        "architecture": "attention_lstm",
        "hidden_size": 4,
        "num_layers": 1,
        "scaler_shift": [0.0, 0.0],
        "scaler_scale": [1.0, 1.0],
    }
    # Members (even ids) all above 0, one non-member too: balanced accuracy 0.875 at 0.
    nn_posterior = [0.2, -0.5, 0.3, 0.1, 0.8, -0.3, 0.9, -0.2]
    trained = pd.DataFrame({"sample_id": roles["target"], "nn_posterior": nn_posterior})
    # The quantile stage's tables, rows in reverse: the audit puts them in each role's order.
    fitted = {
        role: pd.DataFrame({"sample_id": ids[::-1], "quantile_mia": np.arange(len(ids))[::-1]})
        for role, ids in roles.items()
    }
    return AuditInputs(
        sequences=sequences,
        attack_summary=summary,
        attack_weights=[_attack(0, (2, 2))],
        final_logits=final,
        population_logits=population,
        reference_logits=refs,
        trained_scores=trained,
        fitted_scores=fitted,
        model_reports={"target": {"train_accuracy": 1.0, "test_accuracy": 0.5}},
    )


# Every piece of training the tiny inputs' attacks use, sized so that each sum is distinct.
WORK = {
    name: Work(models, epochs, kind)
    for name, models, epochs, kind in [
        ("shadow_model", 1, 1, "classifier"),
        ("distillation", 2, 10, "classifier"),
        ("seqmia_attack", 1, 100, "attack"),
        ("nn_posterior", 1, 1000, "attack"),
        ("reference_models", 2, 10000, "classifier"),
        ("quantile_regressors", 2, 100000, "classifier"),
    ]
}


def _rmia(offline_a: tuple[float, ...], gamma: float) -> dict[str, dict]:
    section = {"offline_a": offline_a, "gamma": gamma}
    return {"rmia_offline": section, "rmia_offline_ratio": section}


def test_audit_scores_every_attack_in_the_samples_order() -> None:
    inputs = _tiny_inputs(np.random.default_rng(1))
    result = audit(inputs, (0.25,), 0, 0, 0, _rmia((0.0, 1.0), 1.0), WORK, 1e-5)
    attacks = result.metrics["attacks"]
    assert list(attacks)[:2] == ["seqmia", "nn_posterior"]
    assert {"lira_offline", "rmia_offline", "loss", "loss_cc"} <= set(attacks)
    frame = result.scores
    assert frame["sample_id"].tolist() == list(range(8))  # sorted by id, as the sequences
    np.testing.assert_array_equal(frame["nn_posterior"], inputs.trained_scores["nn_posterior"])
    # Trained attacks are judged at log-odds 0, fixed in advance.
    members = frame["member"].to_numpy()
    assert members.tolist() == [1, 0] * 4
    assert attacks["nn_posterior"]["balanced_accuracy"] == pytest.approx(0.875)

    # LiRA on the target: every reference is OUT, so the score is (phi - mean phi_refs) / sd,
    # sd the spread of the shadow samples' OUT phis.
    def phi(frame: pd.DataFrame, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
        z = frame.set_index("sample_id").loc[ids].filter(like="logit_").to_numpy()
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        p_y = p[np.arange(len(ids)), labels]
        return np.log(p_y / (1 - p_y))

    def role(frame: pd.DataFrame, name: str) -> pd.DataFrame:
        return frame[frame["role"] == name]

    ids, y = np.arange(8), inputs.final_logits["target"]["label"].to_numpy()
    refs = [role(f, "target") for f in inputs.reference_logits]
    shadow_ids = np.arange(100, 108)
    shadow_out = [
        phi(role(f, "shadow"), shadow_ids, y)[np.arange(8) % 2 != k]
        for k, f in enumerate(inputs.reference_logits)
    ]
    sd = np.concatenate(shadow_out).std()
    expected = (
        phi(inputs.final_logits["target"], ids, y) - np.mean([phi(f, ids, y) for f in refs], axis=0)
    ) / sd
    np.testing.assert_allclose(frame["lira_offline"], expected)
    chosen = attacks["rmia_offline"]["chosen"]
    assert chosen["population"] == 6 and chosen["offline_a"] in (0.0, 1.0)
    assert result.metrics["models"] == {"target": {"train_accuracy": 1.0, "test_accuracy": 0.5}}
    assert result.log[0][0] == logging.INFO and "6 population samples" in result.log[0][1]
    assert set(result.curves) == set(attacks)
    # The quantile stage's scores, put in the samples' order (their values are the sample ids).
    np.testing.assert_array_equal(frame["quantile_mia"], np.arange(8))
    assert attacks["quantile_mia"]["n_members"] == 4
    # Costs: each attack counts each piece of work it uses once; shared pieces are listed once.
    assert attacks["seqmia"]["cost"] == {
        "models": 4,
        "sample_epochs": 11,
        "attack_sample_epochs": 100,
        "work": ["shadow_model", "distillation", "seqmia_attack"],
    }
    assert attacks["lira_offline"]["cost"]["sample_epochs"] == 10001
    assert attacks["loss_cc"]["cost"]["models"] == 1
    # Every attack's empirical bound, and the run's (the largest, confidence split over them).
    assert attacks["seqmia"]["privacy_bound"]["thresholds"] >= 1
    run_bound = result.metrics["privacy_bound"]
    assert run_bound["attacks_tested"] == len(attacks)
    assert run_bound["epsilon_lower"] <= max(
        a["privacy_bound"]["epsilon_lower"] for a in attacks.values()
    )
    exposure = result.metrics["exposure"]
    assert exposure["attack"] in attacks and list(exposure["members_found"]) == ["0.25"]
    assert sum(c["members"] for c in exposure["per_class"]["0.25"]) == 4
    headline = headline_metrics(result.metrics)
    assert headline["seqmia_auc"] == attacks["seqmia"]["auc"]
    assert "seqmia@1%" not in headline and "metric@1%" not in headline  # 25% FPR only
    work = result.metrics["training_work"]
    assert work["shadow_model"]["used_by"] == list(attacks)  # every threshold is calibrated there
    assert work["reference_models"]["used_by"] == [
        "lira_offline",
        "rmia_offline",
        "rmia_offline_ratio",
    ]


def test_audit_draws_the_rmia_population_with_the_seed() -> None:
    inputs = _tiny_inputs(np.random.default_rng(1))
    small = audit(inputs, (0.25,), 0, 3, 0, _rmia((0.5,), 1.0), WORK, 1e-5)
    assert small.metrics["attacks"]["rmia_offline"]["chosen"]["population"] == 3
    rmia = small.scores["rmia_offline"].to_numpy()
    assert set(np.round(rmia * 3, 9)) <= {0.0, 1.0, 2.0, 3.0}  # a count over 3 population samples


def test_rmia_ratio_variant_ranks_by_the_likelihood_ratio_of_the_chosen_a() -> None:
    """``rmia_offline_ratio`` scores each target sample by log p(x|theta) - log p(x) with the
    coefficient a chosen on the shadow model, and RMIA's pairwise score is the fraction of the
    population that this same ratio beats: so with gamma 1 the two rank the samples alike."""
    from seqmia.attacks.rmia import log_likelihood_ratio, offline_marginal

    inputs = _tiny_inputs(np.random.default_rng(1))
    result = audit(inputs, (0.25,), 0, 0, 0, _rmia((0.0, 1.0), 1.0), WORK, 1e-5)
    attacks = result.metrics["attacks"]
    chosen = attacks["rmia_offline_ratio"]["chosen"]
    assert set(chosen) == {"offline_a", "shadow_auc"}  # no gamma, no population
    assert chosen["offline_a"] in (0.0, 1.0)
    ratio = result.scores["rmia_offline_ratio"].to_numpy()
    pairwise = result.scores["rmia_offline"].to_numpy()
    if chosen["offline_a"] == attacks["rmia_offline"]["chosen"]["offline_a"]:
        order = np.argsort(ratio, kind="stable")
        assert (np.diff(pairwise[order]) >= 0).all()  # a higher ratio never scores lower
    # By hand: p_y of a sample 0.5, its OUT references' mean 0.2, a = 0.5 -> p(x) = 0.4.
    marginal = offline_marginal(np.array([[0.1, 0.3]]), np.array([[True, True]]), 0.5)
    assert marginal == pytest.approx([0.75 * 0.2 + 0.25])
    got = log_likelihood_ratio(np.log([0.5]), np.array([[0.1, 0.3]]), np.array([[True, True]]), 0.5)
    assert got == pytest.approx([np.log(0.5 / 0.4)])
    # No OUT reference: the sample cannot be tested offline.
    none = log_likelihood_ratio(np.log([0.5]), np.array([[0.1, 0.3]]), np.zeros((1, 2), bool), 0.5)
    assert np.isnan(none).all()


def test_report_opens_with_the_answer_and_fits_narrow_windows() -> None:
    from seqmia.audit.report import render_report

    result = audit(
        _tiny_inputs(np.random.default_rng(1)), (0.25,), 0, 0, 0, _rmia((0.0,), 1.0), WORK, 1e-5
    )
    exposed = pd.DataFrame({"rank": [1], "sample_id": [4], "class": ["cat"], "score": [0.9]})
    page = render_report(
        result.metrics,
        b"png",
        {"seed": 0},
        classes=["cat", "dog", "frog"],
        exposed=exposed,
        exposure_file="exposure.csv",
    )
    body = page[page.index("<body>") :]
    first = body[body.index("<p") : body.index("</p>")]
    strongest = result.metrics["exposure"]["attack"]
    assert 'class="answer"' in first and f"<b>{strongest}</b>" in first
    assert "members at 25% FPR" in first and "Most exposed classes at 25% FPR: " in first
    assert "not a guarantee" in first
    assert body.index("Exposed samples") < body.index("<h2>Attacks</h2>")
    assert '<a href="exposure.csv">' in body and "<td>cat</td>" in body
    assert "img { max-width: 100%; height: auto; }" in page and 'name="viewport"' in page


def test_a_dp_target_is_audited_against_the_epsilon_it_spent() -> None:
    """The run's bound at the guarantee's delta beside the epsilon spent: consistent when below
    it, a loud error line and a warning paragraph when above it."""
    from seqmia.audit.privacy import dp_check
    from seqmia.audit.protocol import dp_line, headline_metrics
    from seqmia.audit.report import render_report

    inputs = _tiny_inputs(np.random.default_rng(1))
    spent = {
        "epsilon_spent": 50.0,
        "target_epsilon": 50.0,
        "noise_multiplier": 0.4,
        "max_grad_norm": 1.0,
        "delta": 1e-3,
    }
    target = {**inputs.model_reports["target"], "dp": spent}
    inputs = dataclasses.replace(inputs, model_reports={**inputs.model_reports, "target": target})
    result = audit(inputs, (0.25,), 0, 0, 0, _rmia((0.0,), 1.0), WORK, 1e-5)
    dp = result.metrics["dp"]
    assert dp["delta"] == 1e-3 and dp["epsilon_spent"] == 50.0 and dp["consistent"]
    assert dp["epsilon_lower"] < 50.0 and dp["attacks_tested"] == len(result.metrics["attacks"])
    assert headline_metrics(result.metrics)["epsilon_spent"] == 50.0
    assert "The audit agrees" in render_report(result.metrics, b"png", {"seed": 0})
    assert any("is below it" in line for level, line in result.log if level == logging.INFO)

    # A bound above the epsilon spent (a broken accountant or audit) is flagged loudly.
    bound = {**result.metrics["privacy_bound"], "epsilon_lower": 60.0, "delta": 1e-3}
    broken = dp_check(spent, bound)
    assert not broken["consistent"] and "VIOLATION" in dp_line(broken)
    page = render_report({**result.metrics, "dp": broken}, b"png", {"seed": 0})
    assert "DP violation" in page and "exceeds the &epsilon; = 50.00 spent" in page
    with pytest.raises(ValueError, match="same"):
        dp_check(spent, result.metrics["privacy_bound"])  # its delta is 1e-5, not the DP one
    # Without DP the metrics have no dp entry and the headline no epsilon.
    plain = audit(
        _tiny_inputs(np.random.default_rng(1)), (0.25,), 0, 0, 0, _rmia((0.0,), 1.0), WORK, 1e-5
    )
    assert "dp" not in plain.metrics and "epsilon_spent" not in headline_metrics(plain.metrics)
