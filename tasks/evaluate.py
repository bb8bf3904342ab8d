"""Evaluate: score target members and non-members with SeqMIA and the sanity baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger, task

from seqmia.artifacts import (
    load_state_dict,
    read_json,
    write_csv,
    write_json,
    write_parquet,
)
from seqmia.attack import AttentionLSTM, InputScaler, member_probability
from seqmia.config import Params
from seqmia.evaluation import attack_report, best_threshold, roc_curve
from seqmia.layout import Layout
from seqmia.metrics import compute_metrics
from seqmia.plots import plot_roc_loglog
from seqmia.sequences import frame_to_arrays
from tasks.common import ARTEFACT_TASK

# Scores computed from the original model's posterior alone; higher means "member".
BASELINES = {
    "loss": lambda m: -m[:, 0],
    "max_confidence": lambda m: m[:, 1],
}


def final_model_scores(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Baseline scores (N,) from a final-logits frame (sample table + logit_* columns)."""
    logits = torch.from_numpy(frame.filter(like="logit_").to_numpy(np.float64))
    labels = torch.from_numpy(frame["label"].to_numpy(np.int64))
    values = compute_metrics(logits, labels, ["loss", "max"]).numpy()  # (N, 2)
    return {name: score(values) for name, score in BASELINES.items()}


def seqmia_scores(layout: Layout, role: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-sample table and P(member) for the ``role`` sequences under the trained attack."""
    summary = read_json(layout.attack_summary_file)
    frame = pd.read_parquet(layout.sequences_file(role))
    samples, sequences = frame_to_arrays(frame, summary["metrics"])
    scaler = InputScaler(np.array(summary["scaler_shift"]), np.array(summary["scaler_scale"]))
    model = AttentionLSTM(len(summary["metrics"]), summary["hidden_size"], summary["num_layers"])
    model.load_state_dict(load_state_dict(layout.attack_model_file))
    return samples, member_probability(model, scaler(sequences))


@task(**ARTEFACT_TASK)
def evaluate_attacks(params: Params, layout: Layout) -> dict:
    """Write eval/metrics.json, per-attack ROC CSVs, the log-log ROC PNG and per-sample scores."""
    logger = get_run_logger()
    fprs = params.evaluate.fpr_targets
    samples, seqmia = seqmia_scores(layout, "target")
    target_final = pd.read_parquet(layout.final_logits_file("target"))
    shadow_final = pd.read_parquet(layout.final_logits_file("shadow"))
    target_final = samples[["sample_id"]].merge(target_final, on="sample_id", how="left")
    members = samples["member"].to_numpy()

    scores = {"seqmia": seqmia, **final_model_scores(target_final)}
    # Decision thresholds: 0.5 for the attack model's probability; the baselines' from the shadow
    # model's members and non-members (the attacker never sees target membership).
    shadow_scores = final_model_scores(shadow_final)
    thresholds = {"seqmia": 0.5}
    for name, values in shadow_scores.items():
        thresholds[name] = best_threshold(values, shadow_final["member"].to_numpy())

    attacks, curves = {}, {}
    for name, values in scores.items():
        attacks[name] = attack_report(values, members, thresholds[name], fprs)
        curves[name] = roc_curve(values, members)
        write_csv(
            layout.roc_dir / f"{name}.csv",
            pd.DataFrame({"fpr": curves[name].fpr, "tpr": curves[name].tpr}),
        )
    models = {}
    for role in ("target", "shadow"):
        report = read_json(layout.model_report(role))
        models[role] = {k: report[k] for k in ("train_accuracy", "test_accuracy")}
    metrics = {"attacks": attacks, "models": models}
    write_json(layout.metrics_file, metrics)

    per_sample = samples.assign(**{name: values for name, values in scores.items()})
    write_parquet(layout.scores_file, per_sample)
    plot_roc_loglog(curves, layout.roc_png, title=f"{params.data.name} / {params.train.model}")
    for name, report in attacks.items():
        logger.info(
            "%-15s AUC %.4f  bal.acc %.4f  %s",
            name, report["auc"], report["balanced_accuracy"],
            "  ".join(f"TPR@{k} {v:.4f}" for k, v in report["tpr_at_fpr"].items()),
        )  # fmt: skip
    return metrics
