"""The evaluation protocol: which attacks score the target model's samples, how each is
calibrated, and the ``eval/metrics.json`` report of them all.

Every decision threshold comes from the attacker's side (the shadow model, or fixed in advance);
the target's membership labels only score the attacks. Scores are "higher = member".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from seqmia.attacks.lira import logit_scaled_confidence, offline_scores, out_sd
from seqmia.attacks.metric import class_conditional_scores, class_thresholds, metric_attack_scores
from seqmia.attacks.networks import InputScaler, build_attack, ensemble_log_odds, member_log_odds
from seqmia.attacks.rmia import RmiaInputs, population_rows, rmia_attack, true_class_log_prob
from seqmia.attacks.seqmia.sequences import frame_to_arrays
from seqmia.audit.roc import (
    Roc,
    attack_report,
    best_threshold,
    bootstrap_intervals,
    interpolated_tpr_at_fpr,
    roc_curve,
)
from seqmia.base.seeding import derive_seed
from seqmia.params.partition import ROLES

# Model accuracies copied from each model's report into ``eval/metrics.json``.
ACCURACIES = ("train_accuracy", "test_accuracy")


def logit_array(frame: pd.DataFrame) -> np.ndarray:
    """The ``logit_*`` columns of ``frame`` as (N, C) float64."""
    return frame.filter(like="logit_").to_numpy(np.float64)


def in_order(order: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` in the sample order of ``order`` (one row per ``sample_id`` of it)."""
    return order[["sample_id"]].merge(frame, on="sample_id", how="left", validate="1:1")


def reference_logits(
    frames: Sequence[pd.DataFrame], role: str, order: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, K, C) of K reference models (their logits ``frames``) on ``role``'s samples
    ("target", "shadow" or "population") in the order of ``order`` (N rows), and (N, K) true
    where that model left the sample out."""
    logits, out = [], []
    for frame in frames:
        frame = order[["sample_id", "label"]].merge(
            frame[frame["role"] == role], on="sample_id", how="left", validate="1:1"
        )
        logits.append(logit_array(frame))
        out.append(~frame["in_training"].to_numpy(bool))
    return np.stack(logits, axis=1), np.stack(out, axis=1)


def per_reference(
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    logits: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """``statistic(logits (N, C), labels (N,)) -> (N,)`` under each of K reference models:
    logits (N, K, C) -> (N, K)."""
    return np.stack([statistic(logits[:, k], labels) for k in range(logits.shape[1])], axis=1)


def true_class_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_y of logits (N, C) and labels (N,): (N,) float64."""
    return np.exp(true_class_log_prob(logits, labels))


def seqmia_log_odds(
    summary: dict, weights: Sequence[dict[str, torch.Tensor]], sequences: np.ndarray
) -> np.ndarray:
    """Membership log-odds (N,) of the SeqMIA attack (the mean over its ensemble's members) on
    sequences (N, T, k), from the attack stage's summary and each member's weights."""
    log_mask = summary.get("scaler_log_mask")
    scaler = InputScaler(
        np.array(summary["scaler_shift"]), np.array(summary["scaler_scale"]),
        None if log_mask is None else np.array(log_mask, dtype=bool),
    )  # fmt: skip
    x = scaler(sequences)
    scores = []
    for state in weights:
        model = build_attack(
            summary["architecture"], sequences.shape[1:], summary["hidden_size"],
            summary["num_layers"],
        )  # fmt: skip
        model.load_state_dict(state)
        scores.append(member_log_odds(model, x))
    return ensemble_log_odds(scores)


def metric_attacks(
    target_logits: np.ndarray,
    target_labels: np.ndarray,
    shadow_logits: np.ndarray,
    shadow_labels: np.ndarray,
    shadow_members: np.ndarray,
    num_classes: int,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Target scores (N,) and decision thresholds of the metric attacks, raw and
    class-conditional (``<name>_cc``, whose threshold is 0 by construction).

    target_logits (N, C), target_labels (N,); every threshold is calibrated on the shadow
    model's M samples: shadow_logits (M, C), shadow_labels and shadow_members (M,).
    """
    t_scores = metric_attack_scores(target_logits, target_labels)
    s_scores = metric_attack_scores(shadow_logits, shadow_labels)
    scores, thresholds = {}, {}
    for name in t_scores:
        scores[name] = t_scores[name]
        thresholds[name] = best_threshold(s_scores[name], shadow_members)
        per_class = class_thresholds(s_scores[name], shadow_labels, shadow_members, num_classes)
        scores[f"{name}_cc"] = class_conditional_scores(t_scores[name], target_labels, per_class)
        thresholds[f"{name}_cc"] = 0.0
    return scores, thresholds


def lira_attack(
    phi_target: np.ndarray,
    ref_phis: np.ndarray,
    ref_out: np.ndarray,
    phi_shadow: np.ndarray,
    shadow_ref_phis: np.ndarray,
    shadow_ref_out: np.ndarray,
    shadow_members: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Offline LiRA scores (N,) of the target's samples and a decision threshold.

    phi_target: (N,) phi under the audited model; ref_phis, ref_out: (N, K) phi under each
    reference model and whether it left the sample out. The OUT spread and the threshold come
    from the attacker's side only: the shadow model's M samples (phi_shadow (M,),
    shadow_ref_phis and shadow_ref_out (M, K), shadow_members (M,) 0/1), each scored against the
    reference models that left it out; shadow samples without an OUT reference are skipped.
    """
    sd = out_sd(shadow_ref_phis, shadow_ref_out)
    shadow_scores = offline_scores(phi_shadow, shadow_ref_phis, shadow_ref_out, sd)
    testable = ~np.isnan(shadow_scores)
    threshold = best_threshold(shadow_scores[testable], np.asarray(shadow_members)[testable])
    return offline_scores(phi_target, ref_phis, ref_out, sd), threshold


def attack_reports(
    scores: dict[str, np.ndarray],
    thresholds: dict[str, float],
    members: np.ndarray,
    fpr_targets: tuple[float, ...],
    bootstrap: int,
    seed: int,
) -> tuple[dict[str, dict], dict[str, Roc]]:
    """The ``attacks`` entries of ``eval/metrics.json`` and each attack's ROC.

    scores: name -> (N,) target scores; members: (N,) 0/1. Each entry is ``attack_report``
    plus the interpolated TPR at each FPR and, when ``bootstrap`` > 0, 95% intervals from
    ``bootstrap`` replicates drawn with a seed of its own per attack.
    """
    reports, curves = {}, {}
    for name, values in scores.items():
        report = attack_report(values, members, thresholds[name], fpr_targets)
        curves[name] = roc_curve(values, members)
        report["interpolated_tpr_at_fpr"] = {
            f"{f:g}": interpolated_tpr_at_fpr(curves[name], f) for f in fpr_targets
        }
        if bootstrap > 0:
            report["ci95"] = bootstrap_intervals(
                values, members, fpr_targets, bootstrap, derive_seed(seed, "bootstrap", name)
            )
        reports[name] = report
    return reports, curves


def model_accuracies(reports: dict[str, dict]) -> dict[str, dict]:
    """The ``models`` entry of ``eval/metrics.json``: each model's train and test accuracy."""
    return {name: {k: report[k] for k in ACCURACIES} for name, report in reports.items()}


def tie_warning(name: str, report: dict) -> str | None:
    """The warning to log when a tie of ``name``'s scores straddles a reported FPR, else None."""
    if not report["straddled_fpr"]:
        return None
    return (
        f"{name}: a tie of scores straddles FPR {', '.join(report['straddled_fpr'])} (top tie "
        f"{report['top_tie']} samples, {report['distinct_scores']} distinct scores); the "
        "conservative TPR there drops the whole tie"
    )


def summary_line(name: str, report: dict) -> str:
    """One line of the end-of-stage summary: AUC, balanced accuracy, TPR at each FPR."""
    tprs = "  ".join(f"TPR@{k} {v:.4f}" for k, v in report["tpr_at_fpr"].items())
    return f"{name:<26} AUC {report['auc']:.4f}  bal.acc {report['balanced_accuracy']:.4f}  {tprs}"


@dataclasses.dataclass(frozen=True)
class AuditInputs:
    """What the evaluate stage reads, as loaded from its artefacts.

    sequences: the target's attack-sample sequences (sample_id, snapshot, metric columns);
    attack_summary and attack_weights: the SeqMIA attack (one state dict per ensemble member);
    final_logits and population_logits: role -> (sample_id, label, …, logit_*) of each role's
    final model on its attack samples (with ``member``) and on RMIA's population samples;
    reference_logits: one frame per reference model (sample_id, role, in_training, logit_*);
    trained_scores: (sample_id, one log-odds column per trained baseline); model_reports:
    model name -> its report.
    """

    sequences: pd.DataFrame
    attack_summary: dict
    attack_weights: list[dict[str, torch.Tensor]]
    final_logits: dict[str, pd.DataFrame]
    population_logits: dict[str, pd.DataFrame]
    reference_logits: list[pd.DataFrame]
    trained_scores: pd.DataFrame
    model_reports: dict[str, dict]


@dataclasses.dataclass(frozen=True)
class Audit:
    """The evaluate stage's results: ``metrics`` (eval/metrics.json), ``scores`` (the target's
    samples with one score column per attack), each attack's ROC, and (level, message) lines
    to log, in order."""

    metrics: dict
    scores: pd.DataFrame
    curves: dict[str, Roc]
    log: list[tuple[int, str]]


def audit(
    inputs: AuditInputs,
    fpr_targets: tuple[float, ...],
    bootstrap: int,
    offline_a: tuple[float, ...],
    gamma: float,
    population: int,
    seed: int,
) -> Audit:
    """Score the target's members and non-members with every attack and report.

    SeqMIA and the trained baselines score log-odds, "member" at 0 (P(member) = 0.5, fixed in
    advance); the metric attacks, LiRA and RMIA calibrate their thresholds on the shadow model.
    RMIA's population is ``population`` samples of the population part drawn with ``seed``
    (0: all), its coefficient a the best of ``offline_a`` on the shadow model.
    """
    samples, sequences = frame_to_arrays(inputs.sequences, inputs.attack_summary["metrics"])
    members = samples["member"].to_numpy()
    target = in_order(samples, inputs.final_logits["target"])
    shadow = inputs.final_logits["shadow"]
    trained = in_order(samples, inputs.trained_scores)
    trained_names = [c for c in trained.columns if c not in samples.columns]
    seqmia = seqmia_log_odds(inputs.attack_summary, inputs.attack_weights, sequences)
    scores = {"seqmia": seqmia, **{name: trained[name].to_numpy() for name in trained_names}}
    thresholds = {name: 0.0 for name in scores}

    labels = {"target": target["label"].to_numpy(), "shadow": shadow["label"].to_numpy()}
    logits = {"target": logit_array(target), "shadow": logit_array(shadow)}
    shadow_members = shadow["member"].to_numpy()
    metric_scores, metric_thresholds = metric_attacks(
        logits["target"], labels["target"], logits["shadow"], labels["shadow"], shadow_members,
        logits["target"].shape[1],
    )  # fmt: skip
    scores.update(metric_scores)
    thresholds.update(metric_thresholds)

    frames = {"target": target, "shadow": shadow}
    refs = {role: reference_logits(inputs.reference_logits, role, frames[role]) for role in ROLES}
    phi = {role: logit_scaled_confidence(logits[role], labels[role]) for role in ROLES}
    ref_phi = {role: per_reference(logit_scaled_confidence, refs[role][0], labels[role])
               for role in ROLES}  # fmt: skip
    scores["lira_offline"], thresholds["lira_offline"] = lira_attack(
        phi["target"], ref_phi["target"], refs["target"][1],
        phi["shadow"], ref_phi["shadow"], refs["shadow"][1], shadow_members,
    )  # fmt: skip

    order = inputs.population_logits["target"][["sample_id", "label"]]
    order = order.iloc[population_rows(len(order), population, seed)]
    z_logits, _ = reference_logits(inputs.reference_logits, "population", order)
    p_z_refs = per_reference(true_class_prob, z_logits, order["label"].to_numpy())
    rmia = {}
    for role in ROLES:
        z = in_order(order, inputs.population_logits[role])
        rmia[role] = RmiaInputs(
            log_p_x=true_class_log_prob(logits[role], labels[role]),
            p_x_refs=per_reference(true_class_prob, refs[role][0], labels[role]),
            x_out_mask=refs[role][1], p_z_refs=p_z_refs,
            log_p_z=true_class_log_prob(logit_array(z), z["label"].to_numpy()),
        )  # fmt: skip
    scores["rmia_offline"], thresholds["rmia_offline"], chosen = rmia_attack(
        rmia["target"], rmia["shadow"], shadow_members, offline_a, gamma
    )
    log = [(logging.INFO, (
        f"rmia_offline: a = {chosen['offline_a']:g} (shadow AUC {chosen['shadow_auc']:.4f}), "
        f"gamma {chosen['gamma']:g}, {chosen['population']} population samples"
    ))]  # fmt: skip

    attacks, curves = attack_reports(scores, thresholds, members, fpr_targets, bootstrap, seed)
    attacks["rmia_offline"]["chosen"] = chosen
    for name, report in attacks.items():
        if (warning := tie_warning(name, report)) is not None:
            log.append((logging.WARNING, warning))
    for name, report in sorted(attacks.items(), key=lambda kv: -kv[1]["auc"]):
        log.append((logging.INFO, summary_line(name, report)))
    metrics = {"attacks": attacks, "models": model_accuracies(inputs.model_reports)}
    return Audit(metrics=metrics, scores=samples.assign(**scores), curves=curves, log=log)
