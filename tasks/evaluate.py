"""Evaluate: score target members and non-members with SeqMIA and every baseline; report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from seqmia.attacks.registry import ATTACKS
from seqmia.audit.costs import training_work
from seqmia.audit.plots import plot_gallery, plot_roc_loglog
from seqmia.audit.privacy import exposure_table
from seqmia.audit.protocol import Audit, AuditInputs, audit, headline_metrics
from seqmia.audit.report import render_report
from seqmia.base.artifacts import (
    atomic_path,
    write_csv,
    write_json,
    write_parquet,
)
from seqmia.data.parts import ROLES
from seqmia.params.evaluate import EvaluateParams
from tasks.common import ARTEFACT_TASK, check_inputs, load_prepared
from tasks.layout import Layout

# The DVC metrics file beside eval/metrics.json: the few numbers `dvc exp show` prints.
HEADLINE_NAME = "headline.json"
# Every target sample ranked by the strongest attack's score, for the owner to find them.
EXPOSURE_NAME = "exposure.csv"
# How many exposed members the report shows (thumbnails for images, rows otherwise).
SHOWN_EXPOSED = 24


def exposed_members(
    table: pd.DataFrame, dataset: dict[str, np.ndarray], rate: str, png: Path
) -> tuple[bytes | None, pd.DataFrame]:
    """The members flagged at ``rate`` (riskiest first, at most ``SHOWN_EXPOSED``): their
    thumbnails as PNG bytes for image data (None for feature vectors), and their rows."""
    shown = table[table[f"flagged_at_{rate}"] & (table["member"] == 1)].head(SHOWN_EXPOSED)
    x = dataset["x"]
    if x.ndim < 3 or shown.empty:
        return None, shown
    ids = shown["sample_id"].to_numpy()
    plot_gallery(
        np.asarray(x[ids]), [f"{c} #{i}" for c, i in zip(shown["class"], ids, strict=True)], png
    )
    return png.read_bytes(), shown


def read_audit_inputs(references: int, layout: Layout) -> AuditInputs:
    """Every artefact the stage reads (attack summary and weights, sequences, logits, baseline
    scores, ``references`` reference models' logits, model reports), each checked to load before
    any is used, so a missing or damaged one stops the stage before any scoring. Each is read
    once: the check's loaded copy is the one used."""
    summary = check_inputs([layout.attack_summary_file], keep=True)[layout.attack_summary_file]
    members, refs = range(1, summary.get("ensemble", 1) + 1), range(1, references + 1)
    got = check_inputs(
        [
            *(layout.attack_member_file(k) for k in members),
            layout.sequences_file("target"),
            layout.baseline_scores_file,
            *(layout.quantile_scores_file(r) for r in ROLES),
            *(
                f(r)
                for r in ROLES
                for f in (
                    layout.final_logits_file,
                    layout.population_logits_file,
                    layout.model_report,
                )
            ),
            *(f(i) for i in refs for f in (layout.reference_logits_file, layout.reference_report)),
        ],
        keep=True,
    )
    reports = {role: got[layout.model_report(role)] for role in ROLES}
    reports |= {f"reference_{i}": got[layout.reference_report(i)] for i in refs}
    return AuditInputs(
        sequences=got[layout.sequences_file("target")],
        attack_summary=summary,
        attack_weights=[got[layout.attack_member_file(k)] for k in members],
        final_logits={r: got[layout.final_logits_file(r)] for r in ROLES},
        population_logits={r: got[layout.population_logits_file(r)] for r in ROLES},
        reference_logits=[got[layout.reference_logits_file(i)] for i in refs],
        trained_scores=got[layout.baseline_scores_file],
        fitted_scores={r: got[layout.quantile_scores_file(r)] for r in ROLES},
        model_reports=reports,
    )


def audit_run(inputs: AuditInputs, run_params: dict, seed: int, bootstrap: int) -> Audit:
    """``audit`` of ``inputs`` with the run's params (``run_params``: the whole params.yaml):
    its FPR targets, RMIA population and settings, delta, and the training the attacks need."""
    work = training_work(
        run_params,
        inputs.model_reports,
        inputs.attack_summary,
        inputs.final_logits["shadow"]["member"].to_numpy(),
        len(inputs.population_logits["target"]),
        inputs.attack_summary["metrics"],
    )
    settings = {name: run_params[a.settings] for name, a in ATTACKS.items() if a.settings}
    evaluate = run_params["evaluate"]
    return audit(
        inputs,
        tuple(evaluate["fpr_targets"]),
        bootstrap,
        run_params["rmia"]["population"],
        seed,
        settings,
        work,
        evaluate["delta"],
    )


@task(**ARTEFACT_TASK)
def evaluate_attacks(
    evaluate: EvaluateParams, references: int, seed: int, run_params: dict, layout: Layout
) -> dict:
    """Write eval/metrics.json and its headline, per-attack ROC CSVs, the log-log ROC PNG,
    per-sample scores, the exposure ranking and the HTML report (which lists ``run_params``, the
    whole of params.yaml, and from which each attack of the registry gets its settings
    section)."""
    result = audit_run(read_audit_inputs(references, layout), run_params, seed, evaluate.bootstrap)
    dataset = load_prepared(layout.dataset_file)
    classes = np.asarray(dataset["classes"]).astype(str)
    exposure = result.metrics["exposure"]
    table = exposure_table(
        result.scores, result.scores[exposure["attack"]].to_numpy(), exposure["thresholds"]
    )
    table.insert(3, "class", classes[table["label"].to_numpy()])
    write_csv(layout.eval_dir / EXPOSURE_NAME, table)
    for name, curve in result.curves.items():
        roc = pd.DataFrame({"fpr": curve.fpr, "tpr": curve.tpr})
        write_csv(layout.roc_dir / f"{name}.csv", roc)
    write_json(layout.metrics_file, result.metrics)
    write_json(layout.eval_dir / HEADLINE_NAME, headline_metrics(result.metrics))
    write_parquet(layout.scores_file, result.scores)
    title = f"{run_params['data']['name']} / {run_params['train']['model']}"
    plot_roc_loglog(result.curves, layout.roc_png, title=title)
    low = next(iter(exposure["members_found"]))
    with tempfile.TemporaryDirectory() as scratch:
        gallery, shown = exposed_members(table, dataset, low, Path(scratch) / "gallery.png")
    page = render_report(
        result.metrics,
        layout.roc_png.read_bytes(),
        run_params,
        classes=list(classes),
        gallery_png=gallery,
        exposed=shown,
        exposure_file=EXPOSURE_NAME,
    )
    with atomic_path(layout.report_file) as tmp:
        tmp.write_text(page)
    logger = get_run_logger()
    for level, line in result.log:
        logger.log(level, line)
    return result.metrics
