"""The evaluation protocol: every attack of the registry (``seqmia.attacks.registry``) scores
the target model's samples, and ``eval/metrics.json`` reports them all.

Every decision threshold comes from the attacker's side (the shadow model, or fixed in advance);
the target's membership labels only score the attacks. Scores are "higher = member".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from seqmia.attacks.registry import ATTACKS, FITTED, family_of
from seqmia.attacks.rmia import population_rows, true_class_log_prob, true_class_prob
from seqmia.attacks.scoring import RoleData, Scored, ScoringInputs, per_reference
from seqmia.attacks.seqmia.frames import frame_to_arrays
from seqmia.audit.costs import Work, attack_costs, work_table
from seqmia.audit.privacy import (
    dp_check,
    headline_rates,
    per_class_found,
    privacy_bounds,
    strongest_attack,
    threshold_at_fpr,
)
from seqmia.base.roc import (
    Roc,
    attack_report,
    bootstrap_intervals,
    interpolated_tpr_at_fpr,
    roc_curve,
)
from seqmia.base.seeding import derive_seed
from seqmia.data.parts import ROLES

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


# The rates the headline shows (eval/metrics.json keys) and their names there; the families'
# short names. Short, flat keys: each is a column header of `dvc exp show`.
HEADLINE_RATES = {"0.001": "@0.1%", "0.01": "@1%"}
HEADLINE_FAMILIES = {
    "seqmia_ablation": "ablation",
    "trajectory": "trajectory",
    "posterior_nn": "nn",
    "reference": "reference",
    "quantile": "quantile",
    "metric": "metric",
}


def headline_metrics(metrics: dict) -> dict:
    """``eval/headline.json``, the DVC metrics file: the few numbers a terminal table can hold.

    The target's train and test accuracy, SeqMIA's AUC and TPR at 0.1% and 1% FPR (those the run
    computes), and for every other family the TPR at 1% FPR of its strongest attack there
    (``metric@1%``: the best of the final-model metric attacks; which one it is is in
    ``eval/metrics.json``). The keys stay the same from run to run, so experiments line up in
    ``dvc exp show``; a DP-SGD target adds the ε it spent and the empirical lower bound.
    """
    attacks, target = metrics["attacks"], metrics["models"]["target"]
    seqmia = attacks["seqmia"]
    headline = {
        "train_acc": target["train_accuracy"],
        "test_acc": target["test_accuracy"],
        "seqmia_auc": seqmia["auc"],
    }
    for rate, suffix in HEADLINE_RATES.items():
        if rate in seqmia["tpr_at_fpr"]:
            headline[f"seqmia{suffix}"] = seqmia["tpr_at_fpr"][rate]
    if "0.01" in seqmia["tpr_at_fpr"]:
        best: dict[str, float] = {}
        for name, report in attacks.items():
            family = HEADLINE_FAMILIES.get(family_of(name))
            if family is not None:
                best[family] = max(best.get(family, 0.0), report["tpr_at_fpr"]["0.01"])
        headline |= {f"{f}@1%": best[f] for f in HEADLINE_FAMILIES.values() if f in best}
    if "dp" in metrics:
        headline |= {k: metrics["dp"][k] for k in ("epsilon_spent", "epsilon_lower")}
    return headline


def dp_line(dp: dict) -> str:
    """One log line on a DP-SGD target: the epsilon spent against the empirical lower bound."""
    verdict = (
        "below it, as it must be"
        if dp["consistent"]
        else "ABOVE IT: VIOLATION, a broken DP training or a broken audit (or the bound's "
        f"{1 - dp['confidence']:.0%} chance)"
    )
    return (
        f"DP-SGD target: epsilon spent {dp['epsilon_spent']:.3f} at delta {dp['delta']:g}; "
        f"empirical lower bound {dp['epsilon_lower']:.3f} ({dp['attacks_tested']} attacks, "
        f"from {dp['attack']}) is {verdict}"
    )


def exposure(
    attacks: dict[str, dict], scores: dict[str, np.ndarray], members: np.ndarray, labels: np.ndarray
) -> dict:
    """What the strongest attack (the most members at the low reported rate) finds: members
    scored at or above its threshold at each of the two rates an owner reads (0.1% and 1% FPR),
    those thresholds, and per class at the higher rate, most exposed first."""
    low, high = headline_rates(list(next(iter(attacks.values()))["tpr_at_fpr"]))
    name = strongest_attack(attacks, low, high)
    cut = {rate: threshold_at_fpr(scores[name], members, float(rate)) for rate in (low, high)}
    found = {rate: int(((scores[name] >= t) & (members == 1)).sum()) for rate, t in cut.items()}
    return {
        "attack": name,
        "members_found": found,
        "thresholds": cut,
        "per_class": {high: per_class_found(scores[name], members, labels, cut[high])},
    }


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
    trained_scores: (sample_id, one log-odds column per trained baseline); fitted_scores: role ->
    (sample_id, one column per attack that a fitting stage of its own scored, e.g. the quantile
    regression's); model_reports: model name -> its report.
    """

    sequences: pd.DataFrame
    attack_summary: dict
    attack_weights: list[dict[str, torch.Tensor]]
    final_logits: dict[str, pd.DataFrame]
    population_logits: dict[str, pd.DataFrame]
    reference_logits: list[pd.DataFrame]
    trained_scores: pd.DataFrame
    fitted_scores: dict[str, pd.DataFrame]
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


def scoring_inputs(
    inputs: AuditInputs,
    samples: pd.DataFrame,
    sequences: np.ndarray,
    population: int,
    seed: int,
    settings: dict[str, dict],
) -> ScoringInputs:
    """What the scorers read, from the loaded artefacts: the target's attack samples in the order
    of ``samples`` (with their ``sequences`` (N, T, k)), the shadow model's in its final logits'
    order, each with the reference models' logits on it; ``population`` of the population
    samples drawn with ``seed`` (0: all)."""
    frames = {
        "target": in_order(samples, inputs.final_logits["target"]),
        "shadow": inputs.final_logits["shadow"],
    }
    order = inputs.population_logits["target"][["sample_id", "label"]]
    order = order.iloc[population_rows(len(order), population, seed)]
    z_logits, _ = reference_logits(inputs.reference_logits, "population", order)
    z_labels = order["label"].to_numpy()
    roles = {}
    for role in ROLES:
        frame = frames[role]
        labels = frame["label"].to_numpy()
        ref_logits, ref_out = reference_logits(inputs.reference_logits, role, frame)
        z = in_order(order, inputs.population_logits[role])
        fitted = in_order(frame[["sample_id"]], inputs.fitted_scores[role])
        roles[role] = RoleData(
            labels=labels,
            members=frame["member"].to_numpy(),
            logits=logit_array(frame),
            ref_logits=ref_logits,
            ref_out=ref_out,
            population_log_p=true_class_log_prob(logit_array(z), z["label"].to_numpy()),
            fitted={name: fitted[name].to_numpy() for name in FITTED},
        )
    return ScoringInputs(
        target=roles["target"],
        shadow=roles["shadow"],
        population_ref_p=per_reference(true_class_prob, z_logits, z_labels),
        sequences=sequences,
        attack_summary=inputs.attack_summary,
        attack_weights=inputs.attack_weights,
        settings=settings,
    )


def score_attacks(
    inputs: ScoringInputs, trained: pd.DataFrame, metrics: list[str]
) -> dict[str, Scored]:
    """Every attack of the registry, in its order: the evaluate stage's scorers on ``inputs``,
    and the shadow-trained attacks' scores (their columns of ``trained``, "member" from 0) for
    those the baselines stage ran on sequences of ``metrics``."""
    results: dict[str, Scored] = {}
    for name, attack in ATTACKS.items():
        if attack.fit_stage == "baselines":
            for column in attack.results(name, metrics):
                if column in trained.columns:
                    results[column] = Scored(trained[column].to_numpy(), 0.0)
        else:
            results.update(attack.score(inputs, name))
    return results


def audit(
    inputs: AuditInputs,
    fpr_targets: tuple[float, ...],
    bootstrap: int,
    population: int,
    seed: int,
    settings: dict[str, dict],
    work: dict[str, Work],
    delta: float,
) -> Audit:
    """Score the target's members and non-members with every attack and report.

    SeqMIA and the trained baselines score log-odds, "member" at 0 (P(member) = 0.5, fixed in
    advance); the metric attacks, LiRA and RMIA calibrate their thresholds on the shadow model.
    RMIA's population is ``population`` samples of the population part drawn with ``seed``
    (0: all); ``settings``: each attack's own params by name (RMIA's candidates for a, gamma);
    ``work``: the training the attacks depend on (``seqmia.audit.costs.training_work``), which
    gives each attack's ``cost`` and the ``training_work`` entry; ``delta``: that of each
    attack's empirical (epsilon, delta) lower bound (``seqmia.audit.privacy``).
    """
    metric_names = inputs.attack_summary["metrics"]
    samples, sequences = frame_to_arrays(inputs.sequences, metric_names)
    members = samples["member"].to_numpy()
    trained = in_order(samples, inputs.trained_scores)
    scoring = scoring_inputs(inputs, samples, sequences, population, seed, settings)
    results = score_attacks(scoring, trained, metric_names)
    scores = {name: r.scores for name, r in results.items()}
    thresholds = {name: r.threshold for name, r in results.items()}
    log = [(logging.INFO, line) for r in results.values() for line in r.log]

    attacks, curves = attack_reports(scores, thresholds, members, fpr_targets, bootstrap, seed)
    for name, result in results.items():
        if result.chosen is not None:
            attacks[name]["chosen"] = result.chosen
    for name, cost in attack_costs(list(attacks), work).items():
        attacks[name]["cost"] = cost
    bounds, run_bound = privacy_bounds(scores, thresholds, members, delta)
    for name, bound in bounds.items():
        attacks[name]["privacy_bound"] = bound
    spent = inputs.model_reports["target"].get("dp")
    dp = None
    if spent is not None:  # DP-SGD: the bound at the guarantee's delta against the epsilon spent
        dp = dp_check(spent, privacy_bounds(scores, thresholds, members, spent["delta"])[1])
        level = logging.INFO if dp["consistent"] else logging.ERROR
        log.append((level, dp_line(dp)))
    for name, report in attacks.items():
        if (warning := tie_warning(name, report)) is not None:
            log.append((logging.WARNING, warning))
    for name, report in sorted(attacks.items(), key=lambda kv: -kv[1]["auc"]):
        log.append((logging.INFO, summary_line(name, report)))
    metrics = {
        "attacks": attacks,
        "models": model_accuracies(inputs.model_reports),
        "training_work": work_table(list(attacks), work),
        "privacy_bound": run_bound,
        "exposure": exposure(attacks, scores, members, samples["label"].to_numpy()),
    }
    if dp is not None:
        metrics["dp"] = dp
    return Audit(metrics=metrics, scores=samples.assign(**scores), curves=curves, log=log)
