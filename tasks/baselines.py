"""Baselines: shadow-trained comparison attacks (earlier attacks and SeqMIA ablations).

Each attack is fitted on the shadow model's members and non-members only, selected on a held-out
shadow split, and then scores the target samples.
"""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from seqmia.attacks.registry import trained_specs
from seqmia.attacks.trained import RoleInputs, fit_baselines, role_inputs
from seqmia.base.artifacts import write_json, write_parquet
from seqmia.base.runtime import available_cpus, resolve_device
from seqmia.base.stopping import raise_if_stopped
from seqmia.data.parts import ROLES
from seqmia.params.baselines import BaselinesParams
from seqmia.training.recipe import as_recipe
from tasks.common import ARTEFACT_TASK, check_inputs, record_timing
from tasks.layout import Layout


def load_role_inputs(layout: Layout, role: str) -> RoleInputs:
    """Sequences and final logits of ``role``, aligned on sample id."""
    return role_inputs(
        pd.read_parquet(layout.sequences_file(role)),
        pd.read_parquet(layout.final_logits_file(role)),
    )


def shadow_metrics(layout: Layout) -> list[str]:
    """The metrics of the shadow sequences, once both roles' sequences and final logits are
    known to load (so that a damaged one stops the stage before any baseline trains)."""
    check_inputs(
        [f(role) for role in ROLES for f in (layout.sequences_file, layout.final_logits_file)]
    )
    return load_role_inputs(layout, "shadow").metrics


@task(**ARTEFACT_TASK)
def train_baselines(b: BaselinesParams, seed: int, device: str, layout: Layout) -> dict:
    """Fit every chosen baseline on shadow data, side by side; write the target scores (one
    column each) and the summaries."""
    logger = get_run_logger()
    shadow, target = load_role_inputs(layout, "shadow"), load_role_inputs(layout, "target")
    specs = trained_specs(b.attacks, shadow.metrics)
    recipes = {s.model.recipe: as_recipe(getattr(b, s.model.recipe)) for s in specs}
    results = fit_baselines(
        specs,
        recipes,
        shadow,
        target,
        seed,
        b.val_fraction,
        hidden_size=b.hidden_size,
        topk=b.topk,
        device=str(resolve_device(device)),
        workers=available_cpus(),
    )
    raise_if_stopped()
    for r in results:
        record_timing(f"baseline {r.name}", r.seconds)
        logger.info(
            "%s: selected epoch %d of %d (held-out shadow AUC %.4f), %.0fs",
            r.name,
            r.summary["selected_epoch"],
            recipes[r.summary["recipe"]].epochs,
            r.summary["val_auc"],
            r.seconds,
        )
    write_parquet(
        layout.baseline_scores_file, target.samples.assign(**{r.name: r.scores for r in results})
    )
    summary = {r.name: r.summary for r in results}
    write_json(layout.baseline_summary_file, summary)
    return summary
