"""Evaluate: score target members and non-members with SeqMIA and every baseline; report."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from seqmia.artifacts import (
    atomic_path,
    load_state_dict,
    read_json,
    write_csv,
    write_json,
    write_parquet,
)
from seqmia.attack import InputScaler, build_attack, ensemble_log_odds, member_log_odds
from seqmia.baselines import class_conditional_scores, class_thresholds, metric_attack_scores
from seqmia.evaluation import (
    attack_report,
    auc,
    best_threshold,
    bootstrap_intervals,
    interpolated_tpr_at_fpr,
    roc_curve,
)
from seqmia.layout import Layout
from seqmia.lira import logit_scaled_confidence, offline_scores, out_sd
from seqmia.params.partition import ROLES
from seqmia.params.schema import StageParams as Params
from seqmia.params.whole import params_to_dict
from seqmia.plots import plot_roc_loglog
from seqmia.report import render_report
from seqmia.rmia import rmia_scores, true_class_log_prob
from seqmia.seeding import derive_seed
from seqmia.sequences import frame_to_arrays
from tasks.common import ARTEFACT_TASK, check_inputs


def check_evaluate_inputs(params: Params, layout: Layout) -> None:
    """Load every artefact the stage reads (attack summary and weights, sequences, logits,
    baseline scores, reference logits, model reports) before any scoring."""
    check_inputs([layout.attack_summary_file])
    members = read_json(layout.attack_summary_file).get("ensemble", 1)
    references = range(1, params.reference.models + 1)
    check_inputs([
        *(layout.attack_member_file(k) for k in range(1, members + 1)),
        layout.sequences_file("target"), layout.baseline_scores_file,
        *(f(role) for role in ROLES for f in (layout.final_logits_file,
                                              layout.population_logits_file, layout.model_report)),
        *(f(i) for i in references for f in (layout.reference_logits_file,
                                             layout.reference_report)),
    ])  # fmt: skip


def seqmia_scores(layout: Layout) -> tuple[pd.DataFrame, np.ndarray]:
    """Target samples (sorted by id) and their membership log-odds under the SeqMIA attack
    (the mean over the ensemble's members when ``attack.ensemble`` > 1)."""
    summary = read_json(layout.attack_summary_file)
    frame = pd.read_parquet(layout.sequences_file("target"))
    samples, sequences = frame_to_arrays(frame, summary["metrics"])
    log_mask = summary.get("scaler_log_mask")
    scaler = InputScaler(
        np.array(summary["scaler_shift"]), np.array(summary["scaler_scale"]),
        None if log_mask is None else np.array(log_mask, dtype=bool),
    )  # fmt: skip
    x = scaler(sequences)
    scores = []
    for k in range(1, summary.get("ensemble", 1) + 1):
        model = build_attack(
            summary["architecture"], sequences.shape[1:], summary["hidden_size"],
            summary["num_layers"],
        )  # fmt: skip
        model.load_state_dict(load_state_dict(layout.attack_member_file(k)))
        scores.append(member_log_odds(model, x))
    return samples, ensemble_log_odds(scores)


def final_logits(layout: Layout, role: str, order: pd.DataFrame | None = None) -> pd.DataFrame:
    """The role's final-model logits frame, optionally in the sample order of ``order``."""
    frame = pd.read_parquet(layout.final_logits_file(role))
    if order is None:
        return frame
    return order[["sample_id"]].merge(frame, on="sample_id", how="left", validate="1:1")


def metric_attacks(
    target: pd.DataFrame, shadow: pd.DataFrame, num_classes: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Target scores and decision thresholds of the metric attacks, raw and class-conditional.

    Every threshold is calibrated on the shadow model's members and non-members.
    """
    logits = lambda f: f.filter(like="logit_").to_numpy(np.float64)  # noqa: E731
    t_labels, s_labels = target["label"].to_numpy(), shadow["label"].to_numpy()
    s_members = shadow["member"].to_numpy()
    t_scores = metric_attack_scores(logits(target), t_labels)
    s_scores = metric_attack_scores(logits(shadow), s_labels)
    scores, thresholds = {}, {}
    for name in t_scores:
        scores[name] = t_scores[name]
        thresholds[name] = best_threshold(s_scores[name], s_members)
        per_class = class_thresholds(s_scores[name], s_labels, s_members, num_classes)
        scores[f"{name}_cc"] = class_conditional_scores(t_scores[name], t_labels, per_class)
        thresholds[f"{name}_cc"] = 0.0
    return scores, thresholds


def reference_logits(layout: Layout, count: int, role: str, order: pd.DataFrame) -> tuple:
    """Logits (N, K, C) of every reference model on ``role``'s samples ("target", "shadow" or
    "population") in the order of ``order``, and (N, K) true where that model left it out."""
    logits, out = [], []
    for index in range(1, count + 1):
        frame = pd.read_parquet(layout.reference_logits_file(index))
        frame = order[["sample_id", "label"]].merge(
            frame[frame["role"] == role], on="sample_id", how="left", validate="1:1"
        )
        logits.append(frame.filter(like="logit_").to_numpy(np.float64))
        out.append(~frame["in_training"].to_numpy(bool))
    return np.stack(logits, axis=1), np.stack(out, axis=1)


def per_reference(statistic, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``statistic(logits (N, C), labels (N,)) -> (N,)`` of each reference model: (N, K)."""
    return np.stack([statistic(logits[:, k], labels) for k in range(logits.shape[1])], axis=1)


def lira_attack(
    layout: Layout, count: int, target: pd.DataFrame, shadow: pd.DataFrame
) -> tuple[np.ndarray, float]:
    """Offline LiRA scores of the target samples and a decision threshold.

    ``target``/``shadow``: final-model logit frames of each role's attack samples. The OUT
    spread and the threshold come from the attacker's side only: the shadow model's samples,
    each scored against the reference models that left it out.
    """
    logits = lambda f: f.filter(like="logit_").to_numpy(np.float64)  # noqa: E731
    phi = {
        name: logit_scaled_confidence(logits(frame), frame["label"].to_numpy())
        for name, frame in (("target", target), ("shadow", shadow))
    }
    t_logits, t_out = reference_logits(layout, count, "target", target)
    s_logits, s_out = reference_logits(layout, count, "shadow", shadow)
    t_refs = per_reference(logit_scaled_confidence, t_logits, target["label"].to_numpy())
    s_refs = per_reference(logit_scaled_confidence, s_logits, shadow["label"].to_numpy())
    sd = out_sd(s_refs, s_out)
    shadow_scores = offline_scores(phi["shadow"], s_refs, s_out, sd)
    testable = ~np.isnan(shadow_scores)
    threshold = best_threshold(shadow_scores[testable], shadow["member"].to_numpy()[testable])
    return offline_scores(phi["target"], t_refs, t_out, sd), threshold


def rmia_attack(
    params: Params, layout: Layout, target: pd.DataFrame, shadow: pd.DataFrame
) -> tuple[np.ndarray, float, dict]:
    """Offline RMIA scores of the target samples, a decision threshold and what was chosen.

    ``target``/``shadow``: final-model logit frames of each role's attack samples. The
    population z is the attacker's distillation part (``rmia.population`` of it, drawn with the
    seed, or all). The coefficient a (from ``rmia.offline_a``) and the threshold come from the
    attacker's side only: the shadow model's samples against the reference models that left
    them out, with the shadow model's answers on the same population.
    """
    r, count = params.rmia, params.reference.models
    logits = lambda f: f.filter(like="logit_").to_numpy(np.float64)  # noqa: E731
    pop = {role: pd.read_parquet(layout.population_logits_file(role)) for role in ROLES}
    order = pop["target"][["sample_id", "label"]]
    if 0 < r.population < len(order):
        rng = np.random.default_rng(derive_seed(params.seed, "rmia-population"))
        order = order.iloc[np.sort(rng.choice(len(order), r.population, replace=False))]
    def true_class_prob(logits_: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.exp(true_class_log_prob(logits_, labels))

    z_logits, _ = reference_logits(layout, count, "population", order)
    p_z_refs = per_reference(true_class_prob, z_logits, order["label"].to_numpy())
    inputs = {}
    for role, frame in (("target", target), ("shadow", shadow)):
        z = order[["sample_id"]].merge(pop[role], on="sample_id", how="left", validate="1:1")
        x_logits, out = reference_logits(layout, count, role, frame)
        p_refs = per_reference(true_class_prob, x_logits, frame["label"].to_numpy())
        inputs[role] = dict(
            log_p_x=true_class_log_prob(logits(frame), frame["label"].to_numpy()),
            p_x_refs=p_refs, x_out_mask=out, p_z_refs=p_z_refs,
            log_p_z=true_class_log_prob(logits(z), z["label"].to_numpy()),
        )  # fmt: skip
    members = shadow["member"].to_numpy()
    testable = inputs["shadow"]["x_out_mask"].any(axis=1)  # has an OUT reference model
    shadow_auc = {}
    for a in r.offline_a:
        scores = rmia_scores(**inputs["shadow"], a=a, gamma=r.gamma)
        shadow_auc[a] = auc(roc_curve(scores[testable], members[testable]))
    best_a = max(r.offline_a, key=lambda a: shadow_auc[a])  # first of equals
    shadow_scores = rmia_scores(**inputs["shadow"], a=best_a, gamma=r.gamma)
    threshold = best_threshold(shadow_scores[testable], members[testable])
    chosen = {
        "offline_a": best_a, "gamma": r.gamma, "population": len(order),
        "shadow_auc": shadow_auc[best_a],
    }  # fmt: skip
    return rmia_scores(**inputs["target"], a=best_a, gamma=r.gamma), threshold, chosen


@task(**ARTEFACT_TASK)
def evaluate_attacks(params: Params, layout: Layout) -> dict:
    """Write eval/metrics.json, per-attack ROC CSVs, the log-log ROC PNG, per-sample scores and
    the HTML report."""
    logger = get_run_logger()
    fprs = params.evaluate.fpr_targets
    samples, seqmia = seqmia_scores(layout)
    members = samples["member"].to_numpy()
    target_final = final_logits(layout, "target", samples)
    shadow_final = final_logits(layout, "shadow")
    num_classes = target_final.filter(like="logit_").shape[1]

    trained = samples[["sample_id"]].merge(
        pd.read_parquet(layout.baseline_scores_file), on="sample_id", how="left", validate="1:1"
    )
    trained_names = [c for c in trained.columns if c not in samples.columns]
    scores = {"seqmia": seqmia, **{name: trained[name].to_numpy() for name in trained_names}}
    # Trained attacks score log-odds: "member" at 0 (P(member) = 0.5), fixed in advance.
    thresholds = {name: 0.0 for name in scores}
    metric_scores, metric_thresholds = metric_attacks(target_final, shadow_final, num_classes)
    scores.update(metric_scores)
    thresholds.update(metric_thresholds)
    scores["lira_offline"], thresholds["lira_offline"] = lira_attack(
        layout, params.reference.models, target_final, shadow_final
    )
    scores["rmia_offline"], thresholds["rmia_offline"], rmia_chosen = rmia_attack(
        params, layout, target_final, shadow_final
    )
    logger.info(
        "rmia_offline: a = %g (shadow AUC %.4f), gamma %g, %d population samples",
        rmia_chosen["offline_a"], rmia_chosen["shadow_auc"], rmia_chosen["gamma"],
        rmia_chosen["population"],
    )  # fmt: skip

    attacks, curves = {}, {}
    for name, values in scores.items():
        report = attack_report(values, members, thresholds[name], fprs)
        curves[name] = roc_curve(values, members)
        report["interpolated_tpr_at_fpr"] = {
            f"{f:g}": interpolated_tpr_at_fpr(curves[name], f) for f in fprs
        }
        if params.evaluate.bootstrap > 0:
            report["ci95"] = bootstrap_intervals(
                values, members, fprs, params.evaluate.bootstrap,
                derive_seed(params.seed, "bootstrap", name),
            )  # fmt: skip
        attacks[name] = report
        if name == "rmia_offline":
            report["chosen"] = rmia_chosen
        if report["straddled_fpr"]:
            logger.warning(
                "%s: a tie of scores straddles FPR %s (top tie %d samples, %d distinct scores); "
                "the conservative TPR there drops the whole tie",
                name, ", ".join(report["straddled_fpr"]), report["top_tie"],
                report["distinct_scores"],
            )  # fmt: skip
        write_csv(
            layout.roc_dir / f"{name}.csv",
            pd.DataFrame({"fpr": curves[name].fpr, "tpr": curves[name].tpr}),
        )
    models = {}
    for role in ("target", "shadow"):
        model_report = read_json(layout.model_report(role))
        models[role] = {k: model_report[k] for k in ("train_accuracy", "test_accuracy")}
    for index in range(1, params.reference.models + 1):  # test accuracy: on the pool left out
        model_report = read_json(layout.reference_report(index))
        models[f"reference_{index}"] = {
            k: model_report[k] for k in ("train_accuracy", "test_accuracy")
        }
    metrics = {"attacks": attacks, "models": models}
    write_json(layout.metrics_file, metrics)

    write_parquet(layout.scores_file, samples.assign(**scores))
    title = f"{params.data.name} / {params.train.model}"
    plot_roc_loglog(curves, layout.roc_png, title=title)
    with atomic_path(layout.report_file) as tmp:
        tmp.write_text(render_report(metrics, layout.roc_png.read_bytes(), params_to_dict(params)))
    for name, report in sorted(attacks.items(), key=lambda kv: -kv[1]["auc"]):
        logger.info(
            "%-26s AUC %.4f  bal.acc %.4f  %s",
            name, report["auc"], report["balanced_accuracy"],
            "  ".join(f"TPR@{k} {v:.4f}" for k, v in report["tpr_at_fpr"].items()),
        )  # fmt: skip
    return metrics
