"""Fitting an attack model on shadow data: one path (hold out, scale, train, select) for SeqMIA's
attack (and its ensemble) and for every shadow-trained baseline. The training itself is the one
loop every model trains with; validation and model selection are its epoch hook."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from seqmia.attacks.architectures import SELECTIONS
from seqmia.attacks.networks import (
    InputScaler,
    build_attack,
    ensemble_log_odds,
    fit_scaler,
    init_attack_weights,
    loss_like_mask,
    member_log_odds,
)
from seqmia.attacks.scoring import Scored, ScoringInputs
from seqmia.base.errors import UserError
from seqmia.base.roc import auc, roc_curve
from seqmia.base.seeding import derive_seed, make_generator
from seqmia.training.loop import EpochRecord, fit
from seqmia.training.recipe import Recipe


def split_holdout(members: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of row indices into (train, validation) for labels ``members`` (N,)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for value in (0, 1):
        rows = rng.permutation(np.flatnonzero(members == value))
        cut = int(round(fraction * len(rows)))
        if not 0 < cut < len(rows):  # an empty side would fail only after the first epoch
            raise UserError(
                f"val_fraction {fraction} holds out {cut} of the {len(rows)} shadow "
                f"{'members' if value else 'non-members'}; it must hold out at least one and "
                "leave at least one: change val_fraction or the partition sizes"
            )
        val.append(rows[:cut])
        train.append(rows[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class EpochSelection:
    """The epoch hook of an attack's training: scores the held-out split after every epoch
    (its AUC goes into the epoch's record), keeps the weights of the epoch ``selection`` picks
    ("best_val_auc": the highest held-out AUC, the first on ties; "last": the final epoch, as the
    official code does) and the history."""

    def __init__(
        self,
        x_val: torch.Tensor,
        y_val: torch.Tensor,
        selection: str,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; choose from {list(SELECTIONS)}")
        self.x_val, self.y_val = x_val, y_val.cpu().numpy()
        self.selection, self.on_epoch = selection, on_epoch
        self.history: list[EpochRecord] = []
        self.best_auc, self.best_state = -1.0, None
        self.selected = 0

    def __call__(self, record: EpochRecord, model: nn.Module) -> None:
        val_auc = auc(roc_curve(member_log_odds(model, self.x_val), self.y_val))
        record = dataclasses.replace(record, val_auc=val_auc)
        self.history.append(record)
        if self.on_epoch is not None:
            self.on_epoch(record)
        if self.selection == "last":
            self.selected = record.epoch
        elif val_auc > self.best_auc:
            self.best_auc, self.selected = val_auc, record.epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def selected_model(self, model: nn.Module) -> nn.Module:
        """``model`` with the weights of the selected epoch, in eval mode."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model.eval()


def train_attack(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    selection: str,
) -> tuple[nn.Module, list[EpochRecord], int]:
    """Train on (x_train (N, T, k) or (N, d), y_train (N,) 0/1) with cross-entropy; select on the
    held-out shadow split (x_val, y_val) by ``selection`` (``EpochSelection``).

    Returns the model (weights of the selected epoch), the per-epoch history (with each epoch's
    held-out AUC) and the selected 1-based epoch. ``should_stop()`` is asked before every batch
    (``Stopped`` is raised when it says so).
    """
    selector = EpochSelection(x_val, y_val, selection, on_epoch)
    device = next(model.parameters()).device
    fit(
        model,
        x_train.to(device),
        y_train.to(device),
        recipe,
        generator,
        on_epoch=selector,
        should_stop=should_stop,
    )
    # No epoch improved on the start (held-out AUCs all undefined): the last one stands.
    selected = selector.selected or len(selector.history)
    return selector.selected_model(model), selector.history, selected


@dataclasses.dataclass
class FittedAttack:
    """An attack model trained on shadow rows ``train_rows`` and selected on ``val_rows``."""

    model: nn.Module  # at the selected epoch, in eval mode
    scaler: InputScaler  # fitted on the training rows; apply it to any input before the model
    history: list[EpochRecord]
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
    on_epoch: Callable[[EpochRecord], None] | None = None,
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
        model,
        xs[train_rows],
        y[train_rows],
        xs[val_rows],
        y[val_rows],
        recipe,
        generator,
        on_epoch,
        should_stop,
        selection=selection,
    )
    return FittedAttack(model, scaler, history, selected, train_rows, val_rows)


@dataclasses.dataclass
class SeqmiaFit:
    """SeqMIA's attack: K ensemble members (K = 1: the paper's single model) and its summary."""

    models: list[nn.Module]
    history: list[EpochRecord]  # the first member's
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
    on_epoch: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SeqmiaFit:
    """Fit SeqMIA's attack on shadow sequences (N, T, k) of ``metrics`` and labels (N,).

    Member 1 draws from the "attack" stream, so ``ensemble: 1`` is the single model; member k
    from "attack/member-k". ``on_epoch`` follows the first member; ``should_stop`` is asked
    before every batch of every member.
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
            should_stop=should_stop,
        )
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


def seqmia_log_odds(
    summary: dict, weights: Sequence[dict[str, torch.Tensor]], sequences: np.ndarray
) -> np.ndarray:
    """Membership log-odds (N,) of the SeqMIA attack (the mean over its ensemble's members) on
    sequences (N, T, k), from the attack stage's summary and each member's weights."""
    log_mask = summary.get("scaler_log_mask")
    scaler = InputScaler(
        np.array(summary["scaler_shift"]),
        np.array(summary["scaler_scale"]),
        None if log_mask is None else np.array(log_mask, dtype=bool),
    )
    x = scaler(sequences)
    scores = []
    for state in weights:
        model = build_attack(
            summary["architecture"],
            sequences.shape[1:],
            summary["hidden_size"],
            summary["num_layers"],
        )
        model.load_state_dict(state)
        scores.append(member_log_odds(model, x))
    return ensemble_log_odds(scores)


def score_seqmia(inputs: ScoringInputs, name: str) -> dict[str, Scored]:
    """SeqMIA's fitted attack on the target's sequences: membership log-odds, "member" from 0
    (P(member) = 0.5, fixed in advance)."""
    scores = seqmia_log_odds(inputs.attack_summary, inputs.attack_weights, inputs.sequences)
    return {name: Scored(scores, 0.0)}
