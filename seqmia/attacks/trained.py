"""Shadow-trained attacks: their inputs from a role's sequences and final logits (the feature
makers that ``seqmia.attacks.registry`` names), and their fits (side by side in one-thread worker
processes), which then score the target samples."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from seqmia.attacks.fit import fit_attack
from seqmia.attacks.metric import topk_log_posteriors
from seqmia.attacks.registry import TrainedSpec
from seqmia.attacks.seqmia.frames import frame_to_arrays, metric_columns
from seqmia.base.side_by_side import run_side_by_side
from seqmia.base.stopping import stop_requested
from seqmia.training.recipe import Recipe


@dataclasses.dataclass(frozen=True)
class RoleInputs:
    """One role's attack samples, sorted by sample id, with every input a baseline may use."""

    samples: pd.DataFrame  # sample_id, part, member, label
    sequences: np.ndarray  # (N, T, k) float64
    metrics: list[str]
    logits: np.ndarray  # (N, C) final-model logits


def role_inputs(sequences: pd.DataFrame, final_logits: pd.DataFrame) -> RoleInputs:
    """A role's sequence frame and final-logits frame (``sample_id``, ``logit_*``), aligned on
    sample id."""
    metrics = metric_columns(sequences)
    samples, arrays = frame_to_arrays(sequences, metrics)
    final = samples[["sample_id"]].merge(final_logits, on="sample_id", how="left", validate="1:1")
    logits = final.filter(like="logit_").to_numpy(np.float64)
    return RoleInputs(samples, arrays, metrics, logits)


# The feature makers the registry names: (a role's inputs, top-k, the spec's metric) -> features.


def topk(inputs: RoleInputs, k: int, metric: str | None = None) -> np.ndarray:
    """The log of the final model's sorted top-k posteriors: (N, k)."""
    return topk_log_posteriors(inputs.logits, k)


def loss_trajectory(inputs: RoleInputs, k: int, metric: str | None = None) -> np.ndarray:
    """The loss of every snapshot and of the final model: (N, T)."""
    return inputs.sequences[:, :, inputs.metrics.index("loss")]


def sequences(inputs: RoleInputs, k: int, metric: str | None = None) -> np.ndarray:
    """Every metric sequence: (N, T, k)."""
    return inputs.sequences


def one_metric(inputs: RoleInputs, k: int, metric: str | None = None) -> np.ndarray:
    """The sequence of ``metric`` alone: (N, T, 1)."""
    return inputs.sequences[:, :, [inputs.metrics.index(metric)]]


def baseline_features(spec: TrainedSpec, inputs: RoleInputs, k: int) -> np.ndarray:
    """The attack input of every sample for ``spec``: (N, d) or (N, T, k)."""
    return spec.model.features(inputs, k, spec.metric)


@dataclasses.dataclass(frozen=True)
class BaselineJob:
    """Everything one baseline's fit needs, so that it can run in a worker process."""

    spec: TrainedSpec
    recipe: Recipe
    shadow: RoleInputs
    target: RoleInputs
    seed: int
    val_fraction: float
    hidden_size: int
    topk: int
    device: str


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """One baseline's target scores (N,), its summary and its training seconds."""

    name: str
    scores: np.ndarray
    summary: dict
    seconds: float


def fit_baseline(job: BaselineJob) -> BaselineResult:
    """Fit one baseline on the shadow samples and score the target samples."""
    spec = job.spec
    x = baseline_features(spec, job.shadow, job.topk)
    started = time.perf_counter()
    model = spec.model
    fit = fit_attack(
        x,
        job.shadow.samples["member"].to_numpy(),
        model.architecture,
        job.recipe,
        job.seed,
        job.val_fraction,
        ("baseline", spec.name),
        hidden_size=job.hidden_size,
        mlp_widths=model.mlp_widths,
        device=job.device,
        should_stop=stop_requested,
    )
    seconds = time.perf_counter() - started
    summary = {
        "architecture": model.architecture,
        "features": spec.features,
        "recipe": model.recipe,
        "input_shape": list(x.shape[1:]),
        "selected_epoch": fit.selected,
        "val_auc": fit.val_auc,
    }
    scores = fit.scores(baseline_features(spec, job.target, job.topk))
    return BaselineResult(spec.name, scores, summary, seconds)


def fit_baselines(
    specs: list[TrainedSpec],
    recipes: dict[str, Recipe],
    shadow: RoleInputs,
    target: RoleInputs,
    seed: int,
    val_fraction: float,
    *,
    hidden_size: int,
    topk: int,
    device: str,
    workers: int,
) -> list[BaselineResult]:
    """Fit every baseline of ``specs`` (``recipes`` by recipe section), in order of ``specs``.

    On a CPU they train side by side in up to ``workers`` one-thread processes, recurrent
    models first (the longest); each result is bit-identical to fitting it alone with one
    thread. On another device they train one after another.
    """
    jobs = [
        BaselineJob(
            s,
            recipes[s.model.recipe],
            shadow,
            target,
            seed,
            val_fraction,
            hidden_size,
            topk,
            str(device),
        )
        for s in specs
    ]
    order = sorted(range(len(specs)), key=lambda i: specs[i].model.architecture == "mlp")
    return run_side_by_side(fit_baseline, jobs, workers if str(device) == "cpu" else 1, order)
