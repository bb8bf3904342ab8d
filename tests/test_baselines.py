"""Metric attacks, class-conditional thresholds, top-k features, bootstrap intervals, attack
architectures and the HTML report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqmia.attacks.architectures import ATTACK_ARCHITECTURES
from seqmia.attacks.metric import (
    class_conditional_scores,
    class_thresholds,
    metric_scores,
    topk_posteriors,
)
from seqmia.attacks.networks import build_attack
from seqmia.audit.report import render_report
from seqmia.base.roc import auc, bootstrap_intervals, roc_curve


def test_metric_attack_scores_are_higher_for_confident_correct_samples() -> None:
    # Sample 0: confident and correct; sample 1: unsure.
    logits = np.log(np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]]))
    signs = {
        "loss": ("loss", -1.0),
        "max_confidence": ("max", 1.0),
        "entropy": ("entropy", -1.0),
        "m_entropy": ("m_entropy", -1.0),
    }
    scores = {
        name: metric_scores(logits, np.array([0, 0]), metric, sign)
        for name, (metric, sign) in signs.items()
    }
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
        "auc": 0.9,
        "balanced_accuracy": 0.8,
        "tpr_at_fpr": {"0.001": 0.1, "0.01": 0.3},
        "nonmembers_at_fpr": {"0.001": 0.5, "0.01": 5.0},
        "tpr_at_zero_fpr": 0.02,
        "members_above_every_nonmember": 10,
        "n_members": 500,
        "n_nonmembers": 500,
        "ci95": {"auc": [0.88, 0.92], "tpr_at_fpr": {"0.001": [0.0, 0.2], "0.01": [0.2, 0.4]}},
    }
    metrics = {
        "attacks": {"seqmia": entry, "loss": {**entry, "auc": 0.7}},
        "models": {"target": {"train_accuracy": 1.0, "test_accuracy": 0.5}},
    }
    page = render_report(metrics, b"\x89PNG fake", {"seed": 0})
    assert page.startswith("<!doctype html>")
    assert "seqmia" in page and "loss" in page and "[0.8800, 0.9200]" in page
    assert "unresolved" in page  # 0.1% of 500 non-members is half a sample
    assert "0.3000 <small>[0.2000, 0.4000]</small> <small>(5 non-members)</small>" in page
    assert "<td>0.0200 <small>(10)</small></td>" in page  # TPR at zero FPR and its count
    assert page.index("seqmia") < page.index(">loss<")  # ranked by AUC
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")


# The trained attacks of the registry, their inputs, and fitting them side by side.


def test_registry_expands_each_trained_attack_for_the_stored_metrics() -> None:
    from seqmia.attacks.registry import TRAINED, trained_specs

    specs = trained_specs(list(TRAINED), ["loss", "max"])
    assert [s.name for s in specs] == [
        "nn_posterior",
        "trajectory_mia",
        "seqmia_mlp",
        "seqmia_lstm",
        "seqmia_only_loss",
        "seqmia_only_max",
    ]
    assert specs[0].model.mlp_widths == (64,) and specs[4].features == "metric:loss"
    assert [s.features for s in specs[:3]] == ["topk", "loss_trajectory", "sequences"]
    # TrajectoryMIA needs the loss; one metric alone would make the single-metric ablation SeqMIA.
    assert [s.name for s in trained_specs(list(TRAINED), ["max"])] == [
        "nn_posterior",
        "seqmia_mlp",
        "seqmia_lstm",
    ]
    with pytest.raises(ValueError, match="unknown trained attacks \\['lira_offline'\\]"):
        trained_specs(["lira_offline"], ["loss"])


def test_unknown_baseline_fails_validation_with_the_registry_names() -> None:
    import yaml

    from seqmia.attacks.registry import TRAINED
    from seqmia.params.schema import ParamsError
    from seqmia.params.whole import params_from_dict
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["baselines"]["attacks"] = ["nn_posterior", "lira"]
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw)
    assert "baselines.attacks[1]" in str(err.value) and str(list(TRAINED)) in str(err.value)


def _role(n: int = 40, seed: int = 0):
    import pandas as pd

    from seqmia.attacks.trained import role_inputs

    rng = np.random.default_rng(seed)
    ids = rng.permutation(n)  # stored out of order: role_inputs sorts by sample id
    base = pd.DataFrame({"sample_id": ids, "part": "p", "member": ids % 2, "label": ids % 3})
    seq = pd.concat([base.assign(snapshot=t) for t in (1, 2, 3)], ignore_index=True)
    seq["loss"] = rng.random(len(seq)) + (seq["member"] == 0)
    seq["max"] = rng.random(len(seq))
    logits = base[["sample_id"]].assign(**{f"logit_{c}": rng.standard_normal(n) for c in range(4)})
    return role_inputs(seq, logits.iloc[::-1])


def test_role_inputs_align_on_sample_id_and_features_have_their_shapes() -> None:
    from seqmia.attacks.registry import TRAINED, trained_specs
    from seqmia.attacks.trained import baseline_features

    inputs = _role()
    assert inputs.samples["sample_id"].tolist() == list(range(40))
    assert inputs.sequences.shape == (40, 3, 2) and inputs.logits.shape == (40, 4)
    shapes = {
        s.name: baseline_features(s, inputs, 3).shape
        for s in trained_specs(list(TRAINED), inputs.metrics)
    }
    assert shapes == {
        "nn_posterior": (40, 3),
        "trajectory_mia": (40, 3),
        "seqmia_mlp": (40, 3, 2),
        "seqmia_lstm": (40, 3, 2),
        "seqmia_only_loss": (40, 3, 1),
        "seqmia_only_max": (40, 3, 1),
    }


def _fit_all(workers: int, attacks=("trajectory_mia", "seqmia_lstm", "seqmia_single_metric")):
    from seqmia.attacks.registry import trained_specs
    from seqmia.attacks.trained import fit_baselines
    from seqmia.training.recipe import Recipe

    shadow, target = _role(seed=0), _role(seed=1)
    recipe = Recipe(
        optimizer="adam",
        epochs=3,
        batch_size=8,
        lr=0.01,
        momentum=0.0,
        weight_decay=1e-4,
        schedule="step",
        step_size=2,
        gamma=0.5,
        min_lr=0.0,
    )
    specs = trained_specs(list(attacks), shadow.metrics)
    recipes = {"trajectory_mia": recipe, "seqmia_ablations": recipe}
    return fit_baselines(
        specs,
        recipes,
        shadow,
        target,
        0,
        0.25,
        hidden_size=6,
        topk=3,
        device="cpu",
        workers=workers,
    )


def test_side_by_side_workers_give_the_one_by_one_results_bit_for_bit() -> None:
    threads = torch.get_num_threads()
    alone = _fit_all(workers=1)
    assert torch.get_num_threads() == threads  # restored after the one-thread fits
    together = _fit_all(workers=3)
    assert (
        [r.name for r in together]
        == [r.name for r in alone]
        == [
            "trajectory_mia",
            "seqmia_lstm",
            "seqmia_only_loss",
            "seqmia_only_max",
        ]
    )
    for a, b in zip(alone, together, strict=True):
        assert a.scores.tobytes() == b.scores.tobytes(), a.name
        assert a.summary == b.summary and a.scores.shape == (40,)


def test_a_failing_job_stops_its_siblings_and_raises_its_own_error() -> None:
    import time

    from seqmia.base.side_by_side import run_side_by_side
    from seqmia.base.stopping import clear_stop

    started = time.perf_counter()
    with pytest.raises(ZeroDivisionError) as err:
        run_side_by_side(_job, [0.0, 60.0, 60.0], workers=2)
    assert time.perf_counter() - started < 30  # the running sibling stopped, the other never ran
    assert "(Stopped)" in "".join(getattr(err.value, "__notes__", []))
    clear_stop()  # as the next stage run would start: the failure left the stage's stop set
    assert run_side_by_side(_job, [1.0, 2.0], workers=2, order=[1, 0]) == [1.0, 0.5]


def _job(seconds: float) -> float:
    """Fails at once for 0; else waits ``seconds`` unless asked to stop, then returns 1/seconds."""
    import time

    from seqmia.base.stopping import Stopped, stop_requested

    if seconds == 0.0:
        time.sleep(0.5)  # let the sibling start
        return 1 / seconds
    ends = time.perf_counter() + (seconds if seconds > 10 else 0)
    while time.perf_counter() < ends:
        if stop_requested():
            raise Stopped("stopped")
        time.sleep(0.05)
    return 1 / seconds
