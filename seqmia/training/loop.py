"""Stages 1 and 2: supervised training and soft-label distillation with one loop, and the
pipeline's classifier training (recipe from ``train.*``, fit, accuracies).

The whole training set lives in one tensor and batches are index slices: at CIFAR sizes this
beats a DataLoader on a CPU and keeps every random draw on one explicit generator.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from seqmia.base.errors import TrainingStopped
from seqmia.base.runtime import resolve_precision
from seqmia.models.architectures import count_parameters, set_generator
from seqmia.models.inference import accuracy, memory_format, predict_logits
from seqmia.training.recipe import Recipe, as_recipe, cosine_lr, lr_for_epoch, make_optimizer

if TYPE_CHECKING:
    from seqmia.params.train import TrainParams

# the recipe lives in seqmia.training.recipe
__all__ = ["Recipe", "cosine_lr", "lr_for_epoch", "fit"]


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class EpochStats:
    """What one epoch did; handed to the ``on_epoch`` callback."""

    epoch: int  # 1-based
    loss: float
    accuracy: float  # agreement with the (hard or teacher-argmax) target on the batches seen
    lr: float
    seconds: float
    samples: int


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per sample.

    x: (B, C, H, W) -> (B, C, H, W).
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
    # Gather with per-sample offsets: row/col index grids of shape (B, H, 1) / (B, 1, W).
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out).contiguous()


def on_device(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` itself on CPU; elsewhere a generator on ``device`` seeded from it."""
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean of -sum_i q_i log p_i: equals KL(q || p) up to the teacher's (constant) entropy.

    logits: (B, C) student logits; target_probs: (B, C) teacher posteriors.
    """
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    temperature: float = 1.0,
    on_epoch: Callable[[EpochStats, nn.Module], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    augment: bool = False,
    precision: str = "fp32",
) -> nn.Module:
    """Train ``model`` in place and return it.

    inputs: (N, C, H, W) / (N, D) float tensor, or ``NormalisedImages`` that make each batch
    from stored rows; on the model's device.
    targets: (N,) int64 class labels (cross-entropy) or (N, classes) float teacher posteriors
    (soft-label distillation at ``temperature``; the student's logits are divided by it).
    ``on_epoch(stats, model)`` runs after every epoch, e.g. to log or save a snapshot.
    ``should_stop()`` is asked before every batch; when it returns True, ``fit`` raises
    ``TrainingStopped`` and the model is left half-trained.
    ``augment``: random crop and flip of every image batch (``random_crop_flip``).
    ``precision``: autocast dtype of forward passes, "fp32" (none), "bf16" or "fp16" (with loss
    scaling); weights, optimiser state and saved snapshots stay float32 either way.
    """
    soft = targets.is_floating_point()
    fmt = memory_format(inputs)
    model.to(memory_format=fmt)
    device_generator = on_device(generator, inputs.device)
    set_generator(model, device_generator)  # dropout masks
    optimizer = make_optimizer(model, recipe)
    n = inputs.shape[0]
    mixed = precision in AUTOCAST_DTYPES
    autocast = torch.autocast(
        inputs.device.type, dtype=AUTOCAST_DTYPES.get(precision), enabled=mixed
    )
    # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
    scaler = torch.amp.GradScaler(inputs.device.type, enabled=precision == "fp16")
    for epoch in range(recipe.epochs):
        lr = lr_for_epoch(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator, device="cpu").to(inputs.device)
        total_loss = torch.zeros((), device=inputs.device)
        correct = torch.zeros((), device=inputs.device, dtype=torch.long)
        for start in range(0, n, recipe.batch_size):
            if should_stop is not None and should_stop():
                raise TrainingStopped(f"stopped in epoch {epoch + 1} of {recipe.epochs}")
            idx = order[start : start + recipe.batch_size]
            x, y = inputs[idx], targets[idx]
            if augment:
                x = random_crop_flip(x, device_generator)
            x = x.contiguous(memory_format=fmt)
            with autocast:
                logits = model(x)
            logits = logits.float()  # the loss in float32 whatever the forward pass ran in
            if soft:
                loss = soft_cross_entropy(logits / temperature, y)
                hard = y.argmax(dim=1)
            else:
                loss = F.cross_entropy(logits, y)
                hard = y
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            # Accumulate on the device; one host sync per epoch instead of per batch.
            total_loss += loss.detach() * len(idx)
            correct += (logits.detach().argmax(dim=1) == hard).sum()
        if on_epoch is not None:
            stats = EpochStats(
                epoch=epoch + 1,
                loss=float(total_loss) / n,
                accuracy=float(correct) / n,
                lr=lr,
                seconds=time.perf_counter() - started,
                samples=n,
            )
            on_epoch(stats, model)
    model.eval()
    return model


def recipe_from(train: TrainParams, epochs: int | None = None) -> Recipe:
    """The optimisation recipe of ``train.*``, optionally with another epoch count (the
    distillation's)."""
    return as_recipe(train, **({} if epochs is None else {"epochs": epochs}))


def fit_options(train: TrainParams, device: torch.device) -> dict:
    """``fit``'s keyword arguments beyond the recipe: augmentation and precision on ``device``."""
    return {"augment": train.augment, "precision": resolve_precision(train.precision, device)}


def epoch_logger(logger, label: str, total: int) -> Callable[..., None]:
    """``on_epoch`` callback that logs loss, accuracy, rate and throughput of each epoch to
    ``logger`` (anything with ``info(fmt, *args)``)."""

    def log(stats: EpochStats, model: nn.Module | None = None) -> None:
        logger.info(
            "%s epoch %d/%d  loss %.4f  acc %.4f  lr %.5f  %.1fs  %.0f samples/s",
            label, stats.epoch, total, stats.loss, stats.accuracy, stats.lr, stats.seconds,
            stats.samples / max(stats.seconds, 1e-9),
        )  # fmt: skip

    return log


def train_classifier(
    model: nn.Module,
    train: tuple,
    held_out: tuple,
    recipe: Recipe,
    generator: torch.Generator,
    on_epoch: Callable[[EpochStats, nn.Module], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    augment: bool = False,
    precision: str = "fp32",
) -> tuple[nn.Module, dict]:
    """Fit the fresh ``model`` (already on its device) with ``recipe`` on ``train`` and measure it.

    train, held_out: (inputs, labels) with inputs (N, C, H, W) / (N, D) as a tensor or
    ``NormalisedImages`` on the model's device and labels (N,) int64 on the same device.
    Returns the model (eval mode) and a report: parameters, top-1 accuracy on ``train`` and on
    ``held_out``, the training-set size and the history (every epoch's stats but its seconds).
    Accuracies are computed ``recipe.batch_size`` samples at a time: the training batch is the
    largest set of activations the stage holds anyway.
    """
    x_train, y_train = train
    history: list[dict] = []

    def record(stats: EpochStats, trained: nn.Module) -> None:
        history.append({k: v for k, v in vars(stats).items() if k != "seconds"})
        if on_epoch is not None:
            on_epoch(stats, trained)

    fit(
        model, x_train, y_train, recipe, generator, on_epoch=record, should_stop=should_stop,
        augment=augment, precision=precision,
    )  # fmt: skip
    batch = recipe.batch_size
    return model, {
        "parameters": count_parameters(model),
        "train_accuracy": accuracy(predict_logits(model, x_train, batch), y_train.cpu()),
        "test_accuracy": accuracy(predict_logits(model, held_out[0], batch), held_out[1].cpu()),
        "train_samples": len(y_train),
        "history": history,
    }
