"""Attack: train SeqMIA's attack model on shadow sequences (members 1, non-members 0)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger, task

import seqmia.params.attack  # noqa: F401 - the schema of params.attack, which it reads
from seqmia.artifacts import save_state_dict, write_csv, write_json
from seqmia.attack import (
    build_attack,
    fit_scaler,
    init_attack_weights,
    loss_like_mask,
    split_holdout,
    train_attack,
)
from seqmia.errors import UserError
from seqmia.layout import Layout
from seqmia.params.schema import StageParams as Params
from seqmia.recipe import as_recipe
from seqmia.runtime import resolve_device
from seqmia.seeding import derive_seed, make_generator
from seqmia.sequences import frame_to_arrays, metric_columns
from tasks.common import ARTEFACT_TASK, check_inputs, record_timing


def check_attack_inputs(layout: Layout) -> None:
    """Load the shadow sequences before the attack trains."""
    check_inputs([layout.sequences_file("shadow")])


@task(**ARTEFACT_TASK)
def train_seqmia_attack(params: Params, layout: Layout) -> dict:
    """Fit the attack on the shadow sequences, selecting on a held-out shadow split."""
    logger = get_run_logger()
    a = params.attack
    device = resolve_device(params.device)
    frame = pd.read_parquet(layout.sequences_file("shadow"))
    names = metric_columns(frame)
    samples, sequences = frame_to_arrays(frame, names)  # sequences (N, T, k)
    members = samples["member"].to_numpy()
    train_rows, val_rows = split_holdout(
        members, a.val_fraction, derive_seed(params.seed, "holdout")
    )
    log_mask = loss_like_mask(names)
    if a.input_transform.startswith("log_loss_metrics") and not log_mask.any():
        raise UserError(
            f"params key 'attack.input_transform' is {a.input_transform!r}, but the sequences "
            f"hold no loss-like metric (they hold {names}); add loss, entropy or m_entropy to "
            "sequences.metrics or choose another transform"
        )
    scaler = fit_scaler(sequences[train_rows], a.input_transform, log_mask)
    x = scaler(sequences)  # (N, T, k) float32
    y = torch.from_numpy(members.astype(np.int64))
    recipe = as_recipe(a)
    logger.info(
        "attack on %d shadow sequences (%d held out) of %d snapshots x %d metrics %s",
        len(train_rows), len(val_rows), sequences.shape[1], len(names), names,
    )  # fmt: skip

    def on_epoch(r) -> None:
        if r.epoch == 1 or r.epoch % 10 == 0 or r.epoch == a.epochs:
            logger.info(
                "attack epoch %d/%d  loss %.4f  acc %.4f  val AUC %.4f  lr %.5f  %.2fs",
                r.epoch, a.epochs, r.loss, r.train_accuracy, r.val_auc, r.lr, r.seconds,
            )  # fmt: skip

    started = time.perf_counter()
    members_summary = []
    for k in range(1, a.ensemble + 1):
        # Member 1 draws from the same stream as a single attack, so ensemble: 1 is unchanged.
        generator = make_generator(params.seed, "attack", *([] if k == 1 else [f"member-{k}"]))
        model = build_attack(a.architecture, sequences.shape[1:], a.hidden_size, a.num_layers)
        init_attack_weights(model, generator).to(device)
        model, history, selected = train_attack(
            model, x[train_rows], y[train_rows], x[val_rows], y[val_rows], recipe, generator,
            on_epoch if k == 1 else None, selection=a.selection,
        )  # fmt: skip
        save_state_dict(layout.attack_member_file(k), model)
        if k == 1:  # the history plot follows the first member
            write_csv(
                layout.attack_history_file,
                pd.DataFrame([vars(r) for r in history]).drop(columns="seconds"),
            )
            first = (selected, history[selected - 1].val_auc)
        val_auc = history[selected - 1].val_auc
        members_summary.append({"selected_epoch": selected, "val_auc": val_auc})
        if a.ensemble > 1:
            logger.info(
                "ensemble member %d/%d: selected epoch %d (val AUC %.4f)",
                k, a.ensemble, selected, val_auc,
            )  # fmt: skip
    seconds = time.perf_counter() - started
    record_timing("attack", seconds)
    selected, val_auc = first
    summary = {
        "architecture": a.architecture,
        "metrics": names,
        "snapshots": int(sequences.shape[1]),
        "hidden_size": a.hidden_size,
        "num_layers": a.num_layers,
        "input_transform": a.input_transform,
        "scaler_shift": scaler.shift.tolist(),
        "scaler_scale": scaler.scale.tolist(),
        "scaler_log_mask": None if scaler.log_mask is None else scaler.log_mask.tolist(),
        "ensemble": a.ensemble,
        "ensemble_members": members_summary,
        "selected_epoch": selected,
        "val_auc": val_auc,
        "train_sequences": len(train_rows),
        "val_sequences": len(val_rows),
    }
    write_json(layout.attack_summary_file, summary)
    logger.info("selected epoch %d (val AUC %.4f), %.0fs", selected, summary["val_auc"], seconds)
    return {k: summary[k] for k in ("selected_epoch", "val_auc")}
