"""Fitting an attack model on shadow data: one path (hold out, scale, train, select) for SeqMIA's
attack (and its ensemble) and for every shadow-trained baseline."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from seqmia.attacks.networks import (
    AttackEpoch,
    InputScaler,
    build_attack,
    fit_scaler,
    init_attack_weights,
    loss_like_mask,
    member_log_odds,
    split_holdout,
    train_attack,
)
from seqmia.base.errors import UserError
from seqmia.base.seeding import derive_seed, make_generator
from seqmia.training.recipe import Recipe


@dataclasses.dataclass
class FittedAttack:
    """An attack model trained on shadow rows ``train_rows`` and selected on ``val_rows``."""

    model: nn.Module  # at the selected epoch, in eval mode
    scaler: InputScaler  # fitted on the training rows; apply it to any input before the model
    history: list[AttackEpoch]
    selected: int  # 1-based epoch
    train_rows: np.ndarray
    val_rows: np.ndarray

    @property
    def val_auc(self) -> float:
        """Held-out shadow AUC at the selected epoch."""
        return self.history[self.selected - 1].val_auc

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Membership log-odds (N,) of raw inputs ``x`` (N, ...) shaped like the training ones."""
        return member_log_odds(self.model.cpu(), self.scaler(x))


def fit_attack(
    x: np.ndarray,
    members: np.ndarray,
    architecture: str,
    recipe: Recipe,
    seed: int,
    val_fraction: float,
    stream: Sequence[str] = ("attack",),
    *,
    selection: str = "best_val_auc",
    transform: str = "none",
    log_mask: np.ndarray | None = None,
    hidden_size: int = 50,
    num_layers: int = 1,
    mlp_widths: tuple[int, ...] = (512, 128, 32),
    device: torch.device | str = "cpu",
    on_epoch: Callable[[AttackEpoch], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FittedAttack:
    """Fit ``architecture`` on inputs ``x`` (N, T, k) or (N, d) with labels ``members`` (N,) 0/1.

    A stratified ``val_fraction`` of the rows (drawn from the run's "holdout" stream, the same for
    every attack) selects the epoch; the scaler is fitted on the other rows; weights and batch
    order come from the stream ``seed``/``stream``.
    """
    train_rows, val_rows = split_holdout(members, val_fraction, derive_seed(seed, "holdout"))
    scaler = fit_scaler(x[train_rows], transform, log_mask)
    xs = scaler(x)  # (N, ...) float32
    y = torch.from_numpy(members.astype(np.int64))
    generator = make_generator(seed, *stream)
    model = build_attack(architecture, tuple(x.shape[1:]), hidden_size, num_layers, mlp_widths)
    init_attack_weights(model, generator).to(device)
    model, history, selected = train_attack(
        model, xs[train_rows], y[train_rows], xs[val_rows], y[val_rows], recipe, generator,
        on_epoch, should_stop, selection=selection,
    )  # fmt: skip
    return FittedAttack(model, scaler, history, selected, train_rows, val_rows)


@dataclasses.dataclass
class SeqmiaFit:
    """SeqMIA's attack: K ensemble members (K = 1: the paper's single model) and its summary."""

    models: list[nn.Module]
    history: list[AttackEpoch]  # the first member's
    summary: dict


def fit_seqmia_attack(
    sequences: np.ndarray,
    metrics: list[str],
    members: np.ndarray,
    recipe: Recipe,
    seed: int,
    val_fraction: float,
    *,
    selection: str,
    architecture: str,
    hidden_size: int,
    num_layers: int,
    input_transform: str,
    ensemble: int,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[AttackEpoch], None] | None = None,
) -> SeqmiaFit:
    """Fit SeqMIA's attack on shadow sequences (N, T, k) of ``metrics`` and labels (N,).

    Member 1 draws from the "attack" stream, so ``ensemble: 1`` is the single model; member k
    from "attack/member-k". ``on_epoch`` follows the first member.
    """
    log_mask = loss_like_mask(metrics)
    if input_transform.startswith("log_loss_metrics") and not log_mask.any():
        raise UserError(
            f"params key 'attack.input_transform' is {input_transform!r}, but the sequences "
            f"hold no loss-like metric (they hold {metrics}); add loss, entropy or m_entropy to "
            "sequences.metrics or choose another transform"
        )
    fits = [
        fit_attack(
            sequences,
            members,
            architecture,
            recipe,
            seed,
            val_fraction,
            ("attack",) if k == 1 else ("attack", f"member-{k}"),
            selection=selection,
            transform=input_transform,
            log_mask=log_mask,
            hidden_size=hidden_size,
            num_layers=num_layers,
            device=device,
            on_epoch=on_epoch if k == 1 else None,
        )  # fmt: skip
        for k in range(1, ensemble + 1)
    ]
    first = fits[0]
    scaler = first.scaler
    summary = {
        "architecture": architecture,
        "metrics": metrics,
        "snapshots": int(sequences.shape[1]),
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "input_transform": input_transform,
        "scaler_shift": scaler.shift.tolist(),
        "scaler_scale": scaler.scale.tolist(),
        "scaler_log_mask": None if scaler.log_mask is None else scaler.log_mask.tolist(),
        "ensemble": ensemble,
        "ensemble_members": [{"selected_epoch": f.selected, "val_auc": f.val_auc} for f in fits],
        "selected_epoch": first.selected,
        "val_auc": first.val_auc,
        "train_sequences": len(first.train_rows),
        "val_sequences": len(first.val_rows),
    }
    return SeqmiaFit([f.model for f in fits], first.history, summary)
