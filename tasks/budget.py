"""Budget: the points of the budget-matched comparison from one finished run of the pipeline.

The run holds the largest budget (its reference models, its snapshots); each smaller one is
taken from it exactly (``seqmia.audit.budget``): LiRA and RMIA re-scored from the first k
reference models, SeqMIA's attack retrained and scored on the first n snapshots.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task

from seqmia.attacks.fit import fit_seqmia_attack
from seqmia.attacks.seqmia.frames import frame_to_arrays, metric_columns
from seqmia.audit.budget import FIXED, VARIED, budget_point, fewer_snapshots, work_seconds
from seqmia.audit.protocol import AuditInputs
from seqmia.base.artifacts import read_json
from seqmia.base.runtime import resolve_device
from seqmia.params.whole import load_params, params_to_dict
from seqmia.training.recipe import as_recipe
from tasks.attack import attack_model_options
from tasks.evaluate import audit_run, read_audit_inputs
from tasks.layout import Layout


def _audit(inputs: AuditInputs, run_params: dict, seed: int) -> dict:
    """Every attack's ``eval/metrics.json`` entry (with its cost) on ``inputs``; no bootstrap:
    the comparison's spread is over seeds."""
    return audit_run(inputs, run_params, seed, bootstrap=0).metrics["attacks"]


def _seconds(
    report: Mapping, timings: Mapping[str, float], references: int, fraction: float
) -> float | None:
    """The measured seconds of every piece of work the attack uses, None if one is untimed."""
    pieces = [work_seconds(p, timings, references, fraction) for p in report["cost"]["work"]]
    return None if any(s is None for s in pieces) else sum(pieces)


@task
def budget_points(
    workspace: Path,
    references: Sequence[int],
    snapshots: Sequence[int],
    timings: Mapping[str, float],
    fprs: Sequence[str],
) -> list[dict]:
    """The comparison's points of the run in ``workspace`` (its params, its artefacts) at the
    reported rates ``fprs``, with ``timings``: the seconds its pieces of work took when they
    last ran."""
    logger = get_run_logger()
    params, layout = load_params(workspace / "params.yaml"), Layout(workspace)
    run_params, seed = params_to_dict(params), params.seed
    epochs, models = params.distill.epochs, params.reference.models
    metrics = read_json(layout.metrics_file)["attacks"]
    points = [
        budget_point(
            name, "", seed, metrics[name], _seconds(metrics[name], timings, models, 1.0), fprs
        )
        for name in FIXED
        if name in metrics
    ]
    for k in sorted(references):
        attacks = _audit(read_audit_inputs(k, layout), run_params, seed)
        for name in (a for a, knob in VARIED.items() if knob == "k" and a in attacks):
            report = attacks[name]
            points.append(
                budget_point(name, f"k={k}", seed, report, _seconds(report, timings, k, 1.0), fprs)
            )
        logger.info("seed %d, %d reference models: scored", seed, k)
    full = read_audit_inputs(models, layout)
    shadow = pd.read_parquet(layout.sequences_file("shadow"))
    a = params.attack
    for n in sorted(snapshots):
        # Every n is refitted here, the run's own too: the attack's seconds are then measured
        # alike for every n, and at n = the run's snapshots the refit must give the run's result.
        names = metric_columns(shadow)
        cut = shadow if n == epochs else fewer_snapshots(shadow, n)
        samples, sequences = frame_to_arrays(cut, names)
        started = time.perf_counter()
        fit = fit_seqmia_attack(
            sequences,
            names,
            samples["member"].to_numpy(),
            as_recipe(a),
            seed,
            a.val_fraction,
            **attack_model_options(a),
            device=resolve_device(params.device),
        )
        attack_seconds = time.perf_counter() - started
        inputs = dataclasses.replace(
            full,
            sequences=full.sequences if n == epochs else fewer_snapshots(full.sequences, n),
            attack_summary=fit.summary,
            attack_weights=[m.cpu().state_dict() for m in fit.models],
        )
        shorter = {**run_params, "distill": {**run_params["distill"], "epochs": n}}
        report = _audit(inputs, shorter, seed)["seqmia"]
        if n == epochs and report["auc"] != metrics["seqmia"]["auc"]:
            logger.warning(
                "seed %d: the refitted attack's AUC %.6f differs from the run's %.6f (another "
                "machine or thread count trains to other bits)",
                seed,
                report["auc"],
                metrics["seqmia"]["auc"],
            )
        seconds = _seconds(report, {**timings, "attack": attack_seconds}, models, n / epochs)
        points.append(budget_point("seqmia", f"n={n}", seed, report, seconds, fprs))
        logger.info(
            "seed %d, %d snapshots: SeqMIA AUC %.4f (attack fitted in %.0fs)",
            seed,
            n,
            report["auc"],
            attack_seconds,
        )
    return points
