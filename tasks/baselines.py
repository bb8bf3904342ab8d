"""Baselines: shadow-trained comparison attacks (earlier attacks and SeqMIA ablations).

Each attack is fitted on the shadow model's members and non-members only, selected on a held-out
shadow split, and then scores the target samples.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger, task

import seqmia.params.baselines  # noqa: F401 - the schema of params.baselines, which it reads
from seqmia.artifacts import write_json, write_parquet
from seqmia.attack import (
    build_attack,
    fit_scaler,
    init_attack_weights,
    member_log_odds,
    split_holdout,
    train_attack,
)
from seqmia.baselines import topk_log_posteriors
from seqmia.layout import Layout
from seqmia.params.partition import ROLES
from seqmia.params.schema import StageParams as Params
from seqmia.recipe import as_recipe
from seqmia.runtime import resolve_device
from seqmia.seeding import derive_seed, make_generator
from seqmia.sequences import frame_to_arrays, metric_columns
from tasks.common import ARTEFACT_TASK, check_inputs, record_timing
from tasks.stopping import stop_requested


@dataclasses.dataclass(frozen=True)
class RoleInputs:
    """One role's attack samples, sorted by sample id, with every input a baseline may use."""

    samples: pd.DataFrame  # sample_id, part, member, label
    sequences: np.ndarray  # (N, T, k) float64
    metrics: list[str]
    logits: np.ndarray  # (N, C) final-model logits


def load_role_inputs(layout: Layout, role: str) -> RoleInputs:
    """Sequences and final logits of ``role``, aligned on sample id."""
    frame = pd.read_parquet(layout.sequences_file(role))
    metrics = metric_columns(frame)
    samples, sequences = frame_to_arrays(frame, metrics)
    final = pd.read_parquet(layout.final_logits_file(role))
    final = samples[["sample_id"]].merge(final, on="sample_id", how="left", validate="1:1")
    logits = final.filter(like="logit_").to_numpy(np.float64)
    return RoleInputs(samples, sequences, metrics, logits)


def shadow_metrics(layout: Layout) -> list[str]:
    """The metrics of the shadow sequences, once both roles' sequences and final logits are
    known to load (so that a damaged one stops the stage before any baseline trains)."""
    check_inputs([f(role) for role in ROLES for f in (layout.sequences_file,
                                                      layout.final_logits_file)])  # fmt: skip
    return load_role_inputs(layout, "shadow").metrics


@dataclasses.dataclass(frozen=True)
class BaselineSpec:
    """One trained baseline: its name, attack architecture and how it reads a role's inputs."""

    name: str
    architecture: str
    features: str  # "topk" | "loss_trajectory" | "sequences" | "metric:<name>"
    recipe: str  # the baselines.<recipe> section it trains with
    mlp_widths: tuple[int, ...] = (512, 128, 32)  # TrajectoryMIA's attack MLP


def expand_specs(params: Params, metrics: list[str]) -> list[BaselineSpec]:
    """The trained baselines that ``baselines.attacks`` asks for, given the stored metrics."""
    specs: list[BaselineSpec] = []
    for attack in params.baselines.attacks:
        if attack == "nn_posterior":
            specs.append(
                BaselineSpec("nn_posterior", "mlp", "topk", "nn_posterior", mlp_widths=(64,))
            )
        elif attack == "trajectory_mia" and "loss" in metrics:
            specs.append(BaselineSpec("trajectory_mia", "mlp", "loss_trajectory", "trajectory_mia"))
        elif attack == "seqmia_mlp":
            specs.append(BaselineSpec("seqmia_mlp", "mlp", "sequences", "seqmia_ablations"))
        elif attack == "seqmia_lstm":
            specs.append(BaselineSpec("seqmia_lstm", "lstm", "sequences", "seqmia_ablations"))
        elif attack == "seqmia_single_metric" and len(metrics) > 1:
            specs += [
                BaselineSpec(
                    f"seqmia_only_{m}", "attention_lstm", f"metric:{m}", "seqmia_ablations"
                )
                for m in metrics
            ]
    return specs


def features(spec: BaselineSpec, inputs: RoleInputs, topk: int) -> np.ndarray:
    """The attack input of every sample for ``spec``: (N, d) or (N, T, k)."""
    if spec.features == "topk":
        return topk_log_posteriors(inputs.logits, topk)
    if spec.features == "loss_trajectory":
        return inputs.sequences[:, :, inputs.metrics.index("loss")]  # (N, T)
    if spec.features == "sequences":
        return inputs.sequences
    metric = spec.features.removeprefix("metric:")
    return inputs.sequences[:, :, [inputs.metrics.index(metric)]]  # (N, T, 1)


@task(**ARTEFACT_TASK, task_run_name="baseline-{spec.name}")
def train_baseline(spec: BaselineSpec, params: Params, layout: Layout) -> dict:
    """Fit one baseline on shadow data; return its target scores and training summary."""
    logger = get_run_logger()
    b = params.baselines
    device = resolve_device(params.device)
    shadow, target = load_role_inputs(layout, "shadow"), load_role_inputs(layout, "target")
    x_shadow = features(spec, shadow, b.topk)
    members = shadow.samples["member"].to_numpy()
    holdout_seed = derive_seed(params.seed, "holdout")
    train_rows, val_rows = split_holdout(members, b.val_fraction, holdout_seed)
    scaler = fit_scaler(x_shadow[train_rows], "none")
    x, y = scaler(x_shadow), torch.from_numpy(members.astype(np.int64))
    generator = make_generator(params.seed, "baseline", spec.name)
    model = build_attack(
        spec.architecture, tuple(x.shape[1:]), b.hidden_size, mlp_widths=spec.mlp_widths
    )
    init_attack_weights(model, generator).to(device)
    recipe = as_recipe(getattr(b, spec.recipe))
    started = time.perf_counter()
    model, history, selected = train_attack(
        model, x[train_rows], y[train_rows], x[val_rows], y[val_rows], recipe, generator,
        should_stop=stop_requested, selection="best_val_auc",  # every baseline selects its epoch
    )  # fmt: skip
    seconds = time.perf_counter() - started
    record_timing(f"baseline {spec.name}", seconds)
    scores = member_log_odds(model.cpu(), scaler(features(spec, target, b.topk)))
    logger.info(
        "%s: selected epoch %d of %d (held-out shadow AUC %.4f), %.0fs",
        spec.name, selected, recipe.epochs, history[selected - 1].val_auc, seconds,
    )  # fmt: skip
    return {
        "name": spec.name,
        "scores": scores,
        "summary": {
            "architecture": spec.architecture,
            "features": spec.features,
            "recipe": spec.recipe,
            "input_shape": list(x.shape[1:]),
            "selected_epoch": selected,
            "val_auc": history[selected - 1].val_auc,
        },
    }


@task(**ARTEFACT_TASK)
def write_baseline_scores(results: list[dict], layout: Layout) -> dict:
    """Target membership log-odds of every trained baseline (one column each) and summaries."""
    samples = load_role_inputs(layout, "target").samples
    frame = samples.assign(**{r["name"]: r["scores"] for r in results})
    write_parquet(layout.baseline_scores_file, frame)
    summary = {r["name"]: r["summary"] for r in results}
    write_json(layout.baseline_summary_file, summary)
    return summary
