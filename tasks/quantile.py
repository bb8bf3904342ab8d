"""Quantile: per role, a regressor of the role's model's hinge score on non-members.

The population (the distillation part) was trained on by neither the target nor the shadow
model: the regressor of each role learns, from those samples and the role model's answers on
them, the distribution of a non-member's score; the role's attack samples are then scored by
their standardised hinge. The target's scores are the attack's; the shadow's calibrate its
threshold in the evaluate stage.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger, task

from seqmia.attacks.quantile import (
    NllSelection,
    fit_regressor,
    hinge_scores,
    holdout_rows,
    predicted_gaussians,
    standardised_scores,
)
from seqmia.base.artifacts import save_state_dict, write_json, write_parquet
from seqmia.base.runtime import resolve_device
from seqmia.base.seeding import make_generator
from seqmia.base.stopping import raise_if_stopped, stop_requested
from seqmia.data.batches import stored_inputs
from seqmia.data.inputs import input_shape, num_classes
from seqmia.data.partition import part_ids
from seqmia.data.samples import POPULATION_PART
from seqmia.models.build import new_model
from seqmia.models.registry import architecture_of
from seqmia.params.quantile import QuantileParams
from seqmia.params.train import TrainParams
from seqmia.training.recipe import as_recipe
from tasks.common import ARTEFACT_TASK, load_prepared, record_timing
from tasks.layout import Layout

# The registry name of the attack whose scores this stage writes (seqmia.attacks.registry).
ATTACK = "quantile_mia"


def role_hinge(logits: pd.DataFrame, samples: pd.DataFrame) -> np.ndarray:
    """The hinge scores (N,) of a role model's logits frame (sample_id, label, logit_*) on
    ``samples`` (sample_id, label), in the order of ``samples``."""
    rows = samples[["sample_id"]].merge(logits, on="sample_id", how="left", validate="1:1")
    if rows["label"].isna().any():
        raise ValueError("the model's logits miss some of the samples to score")
    z = rows.filter(like="logit_").to_numpy(np.float64)
    return hinge_scores(z, samples["label"].to_numpy())


def role_samples(labels: np.ndarray, partition: pd.DataFrame, role: str) -> pd.DataFrame:
    """The role's attack samples, members then non-members (as ``attack_samples`` orders them),
    without their inputs: (sample_id, part, member, label)."""
    parts = []
    for part, member in ((f"{role}_in", 1), (f"{role}_out", 0)):
        ids = part_ids(partition, part)
        parts.append(pd.DataFrame({"sample_id": ids, "part": part, "member": member}))
    table = pd.concat(parts, ignore_index=True)
    table["label"] = labels[table["sample_id"].to_numpy()].astype(np.int64)
    return table


@task(**ARTEFACT_TASK, task_run_name="quantile-{role}")
def fit_quantile(
    role: str, quantile: QuantileParams, train: TrainParams, seed: int, device: str, layout: Layout
) -> dict:
    """Fit the role's regressor on the population (a held-out share picks the epoch) and score
    the role's attack samples; write the regressor, the scores and a report."""
    logger, device = get_run_logger(), resolve_device(device)
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    pop_ids = part_ids(partition, POPULATION_PART)
    population = pd.DataFrame({"sample_id": pop_ids, "label": dataset["y"][pop_ids]})
    hinge_pop = role_hinge(pd.read_parquet(layout.population_logits_file(role)), population)
    generator = make_generator(seed, "quantile", role)
    fit_rows, held_rows = holdout_rows(len(pop_ids), quantile.holdout, generator)
    x_fit, y_fit = stored_inputs(dataset, pop_ids[fit_rows], device)
    x_held, y_held = stored_inputs(dataset, pop_ids[held_rows], device)
    model = new_model(
        architecture_of(train, quantile.model),
        input_shape(dataset["x"]),
        2 * num_classes(dataset),
        generator,
    )
    recipe = as_recipe(quantile)

    def log(record, val_nll: float) -> None:
        logger.info(
            "quantile %s epoch %d/%d  Gaussian NLL %.4f  held-out %.4f  %.1fs",
            role,
            record.epoch,
            recipe.epochs,
            record.loss,
            val_nll,
            record.seconds,
        )

    selection = NllSelection(x_held, y_held.cpu().numpy(), hinge_pop[held_rows], on_epoch=log)
    started = time.perf_counter()
    model = fit_regressor(
        model.to(device),
        x_fit,
        y_fit,
        torch.from_numpy(hinge_pop[fit_rows]),
        recipe,
        generator,
        selection,
        should_stop=stop_requested,
    )
    record_timing(f"quantile {role} fit", time.perf_counter() - started)

    samples = role_samples(dataset["y"], partition, role)
    x, _ = stored_inputs(dataset, samples["sample_id"].to_numpy(), device)
    hinge = role_hinge(pd.read_parquet(layout.final_logits_file(role)), samples)
    mu, log_sigma = predicted_gaussians(model, x, samples["label"].to_numpy())
    scores = samples[["sample_id", "part", "member", "label"]].assign(
        hinge=hinge, mu=mu, log_sigma=log_sigma
    )
    scores[ATTACK] = standardised_scores(hinge, mu, log_sigma)
    # Held-out non-members standardised by the selected regressor: N(0, 1) when it fits them.
    held_mu, held_log_sigma = predicted_gaussians(model, x_held, y_held.cpu().numpy())
    held_z = standardised_scores(hinge_pop[held_rows], held_mu, held_log_sigma)
    report = {
        "role": role,
        "model": quantile.model,
        "population": len(pop_ids),
        "held_out": len(held_rows),
        "selected_epoch": selection.selected,
        "held_out_nll": selection.best_nll,
        "held_out_z_mean": float(held_z.mean()),
        "held_out_z_sd": float(held_z.std()),
        "history": selection.history,
    }
    raise_if_stopped()
    save_state_dict(layout.quantile_model_file(role), model)
    write_parquet(layout.quantile_scores_file(role), scores)
    write_json(layout.quantile_report(role), report)
    return {k: v for k, v in report.items() if k != "history"}
