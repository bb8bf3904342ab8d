"""DP-SGD with Opacus: what the training loop needs to make a classifier's training private.

Opacus does the mechanism (Poisson-sampled batches, per-sample gradients clipped to
``max_grad_norm``, Gaussian noise of ``noise_multiplier * max_grad_norm``) and the accounting
(Rényi DP). This module resolves the requested privacy into a ``PrivatePlan`` before training
(the noise for a target ε, the δ checked against the training-set size) and wraps the loop's
model, optimiser and batches. opacus is imported inside the functions: the params schema and
plain runs never load it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from seqmia.base.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

# Rényi DP accounting, the one most DP-SGD papers report ε with.
ACCOUNTANT = "rdp"


@dataclasses.dataclass(frozen=True)
class PrivacyRequest:
    """What a run asks for: a target ``epsilon`` to spend over the whole training (0: none),
    or else a given ``noise_multiplier``; the clipping norm and δ."""

    epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    delta: float


@dataclasses.dataclass(frozen=True)
class PrivatePlan:
    """A private training resolved for one training set: ``sample_rate`` = 1 / batches per
    epoch (each sample joins each batch with that probability), the noise multiplier σ
    (found for ``target_epsilon`` if one was asked), C and δ."""

    noise_multiplier: float
    max_grad_norm: float
    delta: float
    sample_rate: float
    epochs: int
    target_epsilon: float | None


def sample_rate(samples: int, batch_size: int) -> float:
    """Opacus's Poisson rate for a loader of ``batch_size`` over ``samples``: 1 / batches."""
    return 1.0 / math.ceil(samples / batch_size)


def plan_private_training(
    request: PrivacyRequest, samples: int, batch_size: int, epochs: int
) -> PrivatePlan:
    """Resolve ``request`` for ``samples`` training samples in batches of ``batch_size`` (the
    expected size) over ``epochs`` epochs. Raises ``UserError`` for a δ of 1/N or more, or a
    request without noise."""
    if request.delta >= 1.0 / samples:
        raise UserError(
            f"dp.delta is {request.delta:g}, but this model trains on N = {samples} samples and "
            f"δ must be below 1/N = {1 / samples:.3g}; e.g. 1e-5"
        )
    rate = sample_rate(samples, batch_size)
    if request.epsilon > 0:
        from opacus.accountants.utils import get_noise_multiplier

        sigma = get_noise_multiplier(
            target_epsilon=request.epsilon,
            target_delta=request.delta,
            sample_rate=rate,
            epochs=epochs,
            accountant=ACCOUNTANT,
        )
    elif request.noise_multiplier > 0:
        sigma = request.noise_multiplier
    else:
        raise UserError("dp.epsilon and dp.noise_multiplier are both 0: no noise, no privacy")
    return PrivatePlan(
        noise_multiplier=float(sigma),
        max_grad_norm=request.max_grad_norm,
        delta=request.delta,
        sample_rate=rate,
        epochs=epochs,
        target_epsilon=request.epsilon if request.epsilon > 0 else None,
    )


@dataclasses.dataclass
class PrivateTraining:
    """The loop's private pieces: ``module`` (the model with per-sample gradient hooks; call it
    for the forward pass), ``optimizer`` (clips, adds noise, steps), ``batches()`` (one epoch of
    Poisson-sampled index batches) and ``epsilon()`` (ε spent so far at the plan's δ)."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    loader: torch.utils.data.DataLoader
    engine: object
    delta: float

    def batches(self) -> Iterator[torch.Tensor]:
        """One epoch: index tensors (B,) of varying size, B ~ Binomial(N, sample_rate)."""
        for (indices,) in self.loader:
            yield indices

    def epsilon(self) -> float:
        return float(self.engine.get_epsilon(self.delta))

    def release(self) -> nn.Module:
        """The trained model without Opacus's hooks (same object, same state-dict keys)."""
        return self.module.to_standard_module()


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    samples: int,
    batch_size: int,
    plan: PrivatePlan,
    generator: torch.Generator,
    noise_generator: torch.Generator,
) -> PrivateTraining:
    """Wrap ``model`` (built ``dp_trainable``, ``seqmia.models.build``) and its ``optimizer``
    for DP-SGD over ``samples`` training samples. Batches are drawn with ``generator`` (CPU),
    noise with ``noise_generator`` (on the model's device), so a seed reproduces the run."""
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    indices = DataLoader(
        TensorDataset(torch.arange(samples)), batch_size=batch_size, generator=generator
    )
    if abs(1.0 / len(indices) - plan.sample_rate) > 1e-12:
        raise ValueError("the plan was made for another training-set size or batch size")
    engine = PrivacyEngine(accountant=ACCOUNTANT)
    module, private_optimizer, loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=indices,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        noise_generator=noise_generator,
    )
    return PrivateTraining(module, private_optimizer, loader, engine, plan.delta)


def plan_report(plan: PrivatePlan, epsilon_spent: float, adaptation: str) -> dict:
    """The ``dp`` entry of a model's report: the plan, the ε the accountant counted, how, and
    what the architecture's adaptation changed (``seqmia.models.build.dp_adaptation``)."""
    return {
        "epsilon_spent": epsilon_spent,
        **dataclasses.asdict(plan),
        "accountant": ACCOUNTANT,
        "adaptation": adaptation,
    }
