"""Attack: train SeqMIA's attack model on shadow sequences (members 1, non-members 0)."""

from __future__ import annotations

import time

import pandas as pd
from prefect import get_run_logger, task

from seqmia.attacks.fit import fit_seqmia_attack
from seqmia.attacks.seqmia.frames import frame_to_arrays, metric_columns
from seqmia.base.artifacts import save_state_dict, write_csv, write_json
from seqmia.base.runtime import resolve_device
from seqmia.base.stopping import raise_if_stopped, stop_requested
from seqmia.params.attack import AttackParams
from seqmia.training.recipe import as_recipe
from tasks.common import ARTEFACT_TASK, check_inputs, record_timing
from tasks.layout import Layout


def check_attack_inputs(layout: Layout) -> None:
    """Load the shadow sequences before the attack trains."""
    check_inputs([layout.sequences_file("shadow")])


def attack_model_options(a: AttackParams) -> dict[str, object]:
    """The ``attack`` section's choices of model and selection, as ``fit_seqmia_attack`` takes
    them: one list for the attack stage and the budget comparison's refits."""
    return {
        "selection": a.selection,
        "architecture": a.architecture,
        "hidden_size": a.hidden_size,
        "num_layers": a.num_layers,
        "input_transform": a.input_transform,
        "ensemble": a.ensemble,
    }


@task(**ARTEFACT_TASK)
def train_seqmia_attack(a: AttackParams, seed: int, device: str, layout: Layout) -> dict:
    """Fit the attack on the shadow sequences, selecting on a held-out shadow split."""
    logger = get_run_logger()
    frame = pd.read_parquet(layout.sequences_file("shadow"))
    names = metric_columns(frame)
    samples, sequences = frame_to_arrays(frame, names)  # sequences (N, T, k)
    recipe = as_recipe(a)
    logger.info(
        "attack on %d shadow sequences of %d snapshots x %d metrics %s",
        len(samples),
        sequences.shape[1],
        len(names),
        names,
    )

    def on_epoch(r) -> None:
        if r.epoch == 1 or r.epoch % 10 == 0 or r.epoch == a.epochs:
            logger.info(
                "attack epoch %d/%d  loss %.4f  acc %.4f  val AUC %.4f  lr %.5f  %.2fs",
                r.epoch,
                a.epochs,
                r.loss,
                r.accuracy,
                r.val_auc,
                r.lr,
                r.seconds,
            )

    started = time.perf_counter()
    fit = fit_seqmia_attack(
        sequences,
        names,
        samples["member"].to_numpy(),
        recipe,
        seed,
        a.val_fraction,
        **attack_model_options(a),
        device=resolve_device(device),
        on_epoch=on_epoch,
        should_stop=stop_requested,
    )
    seconds = time.perf_counter() - started
    record_timing("attack", seconds)
    raise_if_stopped()
    for k, model in enumerate(fit.models, start=1):
        save_state_dict(layout.attack_member_file(k), model)
    history = pd.DataFrame(
        [
            {
                "epoch": r.epoch,
                "loss": r.loss,
                "train_accuracy": r.accuracy,
                "val_auc": r.val_auc,
                "lr": r.lr,
            }
            for r in fit.history
        ]
    )
    write_csv(layout.attack_history_file, history)  # the history plot follows the first member
    write_json(layout.attack_summary_file, fit.summary)
    s = fit.summary
    logger.info(
        "selected epoch %d (val AUC %.4f) of members %s, %.0fs",
        s["selected_epoch"],
        s["val_auc"],
        s["ensemble_members"],
        seconds,
    )
    return {k: s[k] for k in ("selected_epoch", "val_auc")}
