"""Quantile-regression membership inference (Bertran et al., NeurIPS 2023), Gaussian form.

The attacker never trains a shadow copy of the audited model. It queries the model on data it
knows was not trained on (the distillation part) and fits a regressor that predicts, from a
sample and its label, the distribution of the model's score on that sample were it a
non-member: a Gaussian N(mu(x, y), sigma(x, y)^2) of the hinge score
``logit_y - max_{c != y} logit_c``, trained by its negative log-likelihood. A sample's
membership score is its observed hinge standardised by its own predicted distribution,
``(hinge - mu) / sigma``: thresholding it at ``Phi^-1(1 - alpha)`` keeps each sample's false
positive rate at alpha, the per-sample threshold the method is named for.

The regressor is a classifier architecture of the model registry with ``2 * C`` outputs, one
(mu, log sigma) pair per class, of which the sample's label picks one (the label-conditioned
head of the authors' code).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from seqmia.attacks.scoring import Scored, ScoringInputs
from seqmia.base.roc import best_threshold
from seqmia.models.inference import predict_logits
from seqmia.training.loop import EpochRecord, fit
from seqmia.training.recipe import Recipe


def hinge_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label's logit margin over the best other class: logits (N, C), labels (N,) -> (N,)
    float64; positive when the model predicts the label."""
    z = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(z))
    own = z[rows, labels]
    others = z.copy()
    others[rows, labels] = -np.inf
    return own - others.max(axis=1)


def label_head(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The (mu, log sigma) pair of each sample's label: outputs (B, 2C) laid out as C pairs,
    labels (B,) int64 -> (B, 2)."""
    pairs = outputs.reshape(len(outputs), -1, 2)  # (B, C, 2)
    return pairs[torch.arange(len(outputs), device=outputs.device), labels]


def gaussian_nll(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (less the constant log sqrt(2 pi)) of ``observed`` (B,)
    under N(mu, sigma^2), ``predicted`` (B, 2) holding (mu, log sigma): a scalar."""
    mu, log_sigma = predicted[:, 0], predicted[:, 1]
    return (log_sigma + 0.5 * torch.exp(-2.0 * log_sigma) * (observed - mu) ** 2).mean()


def regression_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss of ``fit``: targets (B, 2) hold (label, hinge) per sample."""
    return gaussian_nll(label_head(outputs, targets[:, 0].long()), targets[:, 1])


class NllSelection:
    """The epoch hook of the regressor's training: the Gaussian negative log-likelihood of a
    held-out slice of the population after every epoch, keeping the weights of the epoch where
    it is lowest (the first on ties) and one history entry per epoch."""

    def __init__(
        self,
        x_val: torch.Tensor,
        labels_val: np.ndarray,
        hinge_val: np.ndarray,
        on_epoch: Callable[[EpochRecord, float], None] | None = None,
    ) -> None:
        self.x_val, self.labels_val = x_val, labels_val
        self.hinge_val = torch.as_tensor(np.asarray(hinge_val, dtype=np.float64))
        self.on_epoch = on_epoch
        self.history: list[dict] = []
        self.best_nll, self.best_state, self.selected = float("inf"), None, 0

    def __call__(self, record: EpochRecord, model: nn.Module) -> None:
        mu, log_sigma = predicted_gaussians(model, self.x_val, self.labels_val)
        predicted = torch.from_numpy(np.stack([mu, log_sigma], axis=1))
        val_nll = float(gaussian_nll(predicted, self.hinge_val))
        self.history.append({"epoch": record.epoch, "nll": record.loss, "val_nll": val_nll})
        if self.on_epoch is not None:
            self.on_epoch(record, val_nll)
        if val_nll < self.best_nll:
            self.best_nll, self.selected = val_nll, record.epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def selected_model(self, model: nn.Module) -> nn.Module:
        """``model`` with the weights of the selected epoch, in eval mode."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model.eval()


def fit_regressor(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    hinge: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    selection: NllSelection,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """Train ``model`` (2C outputs) on non-members: inputs (N, ...) or ``BatchedInputs``,
    labels (N,) int64, hinge (N,) the audited model's hinge scores on them; ``selection``
    scores held-out non-members after every epoch and keeps the best epoch's weights, which the
    returned model (in eval mode) has. (The epoch record's accuracy counts the label picked by
    the largest output and means nothing here; its loss is the Gaussian NLL.)"""
    device = next(model.parameters()).device
    targets = torch.stack([labels.double(), hinge.double()], dim=1).float().to(device)
    fit(
        model,
        inputs,
        targets,
        recipe,
        generator,
        loss=regression_loss,
        target_class=lambda t: t[:, 0].long(),
        on_epoch=selection,
        should_stop=should_stop,
    )
    return selection.selected_model(model)


def holdout_rows(n: int, fraction: float, generator: torch.Generator) -> tuple[np.ndarray, ...]:
    """Rows (ascending) of ``n`` population samples to fit on and to hold out: a random
    ``fraction`` of them (at least one, at most n - 1) held out, drawn from ``generator``."""
    held = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=generator).numpy()
    return np.sort(order[held:]), np.sort(order[:held])


def predicted_gaussians(
    model: nn.Module, inputs: torch.Tensor, labels: np.ndarray, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """(mu (N,), log sigma (N,)) float64 that ``model`` predicts for inputs (N, ...) or
    ``BatchedInputs`` with labels (N,), ``batch_size`` samples at a time (a training batch's
    size: two regressors fit side by side, and larger batches' activations raise the stage's
    peak memory)."""
    outputs = predict_logits(model, inputs, batch_size=batch_size)
    pair = label_head(outputs, torch.as_tensor(np.asarray(labels), dtype=torch.long))
    return pair[:, 0].double().numpy(), pair[:, 1].double().numpy()


def standardised_scores(hinge: np.ndarray, mu: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    """Membership scores (N,): each hinge standardised by its own predicted non-member
    distribution, ``(hinge - mu) / sigma``; higher = member."""
    return (np.asarray(hinge) - np.asarray(mu)) / np.exp(np.asarray(log_sigma))


def score_quantile(inputs: ScoringInputs, name: str) -> dict[str, Scored]:
    """The target's standardised scores from the quantile stage, thresholded where they best
    separate the shadow model's members from its non-members (the same regression fitted on
    the shadow model's answers): the attacker's side only."""
    shadow = inputs.shadow.fitted[name]
    threshold = best_threshold(shadow, inputs.shadow.members)
    return {name: Scored(inputs.target.fitted[name], threshold)}
