"""The one training loop: classifiers, distilled students and attack models differ in their data,
their loss and what happens after each epoch (logging, a snapshot, validation and model
selection), never in the loop itself.

The whole training set lives in one tensor and batches are index slices: at CIFAR sizes this
beats a DataLoader on a CPU and keeps every random draw on one explicit generator.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from seqmia.base.stopping import Stopped
from seqmia.models.architectures import set_generator
from seqmia.models.inference import memory_format
from seqmia.training.private import PrivatePlan, make_private
from seqmia.training.recipe import Recipe, lr_for_epoch, make_optimizer

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# (logits (B, C) float32, targets of the batch) -> scalar loss
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """What one epoch did; handed to the ``on_epoch`` hook. ``val_auc`` is filled in by a hook
    that validates (attack models), None otherwise; ``epsilon`` is the ε spent so far by a
    private training (DP-SGD), None otherwise."""

    epoch: int  # 1-based
    loss: float
    accuracy: float  # agreement with the (hard or teacher-argmax) target on the batches seen
    lr: float
    seconds: float
    samples: int
    val_auc: float | None = None
    epsilon: float | None = None


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How a loop runs beyond its recipe. ``augment``: random crop and flip of every image batch
    (``random_crop_flip``). ``precision``: autocast dtype of forward passes, "fp32" (none),
    "bf16" or "fp16" (with loss scaling); weights, optimiser state and snapshots stay float32.
    ``private``: train with DP-SGD as planned (Poisson-sampled batches, clipped and noised
    per-sample gradients; the model must be built ``dp_trainable``), or None."""

    augment: bool = False
    precision: str = "fp32"
    private: PrivatePlan | None = None


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


def fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    *,
    loss: Loss = F.cross_entropy,
    target_class: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_epoch: Callable[[EpochRecord, nn.Module], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    options: FitOptions = FitOptions(),
) -> nn.Module:
    """Train ``model`` in place with ``recipe`` and return it, in eval mode.

    inputs: (N, C, H, W) / (N, D) / (N, T, k) float tensor, or ``BatchedInputs`` that make
    each batch from stored rows; on the model's device. targets: (N, ...) on the same device,
    what ``loss(logits, targets[batch])`` compares with; ``target_class(targets[batch])`` gives
    the (B,) classes the reported accuracy counts (default: the targets are the classes).
    Batch order (or a private training's batch draws), augmentation, dropout masks and DP
    noise draw from ``generator``.
    ``on_epoch(record, model)`` runs after every epoch (log, save a snapshot, validate).
    ``should_stop()`` is asked before every batch; when it returns True, ``Stopped`` is raised and
    the model is left half-trained.
    """
    fmt = memory_format(inputs)
    model.to(memory_format=fmt)
    device_generator = on_device(generator, inputs.device)
    set_generator(model, device_generator)  # dropout masks
    optimizer = make_optimizer(model, recipe)
    n = inputs.shape[0]
    private = None
    if options.private is not None:
        private = make_private(
            model, optimizer, n, recipe.batch_size, options.private, generator, device_generator
        )
        optimizer = private.optimizer
    forward = model if private is None else private.module
    autocast = torch.autocast(
        inputs.device.type,
        dtype=AUTOCAST_DTYPES.get(options.precision),
        enabled=options.precision in AUTOCAST_DTYPES,
    )
    # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
    scaler = torch.amp.GradScaler(inputs.device.type, enabled=options.precision == "fp16")
    for epoch in range(recipe.epochs):
        lr = lr_for_epoch(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        started = time.perf_counter()
        if private is None:
            order = torch.randperm(n, generator=generator, device="cpu").to(inputs.device)
            batches = (order[s : s + recipe.batch_size] for s in range(0, n, recipe.batch_size))
        else:
            batches = (idx.to(inputs.device) for idx in private.batches())
        total_loss = torch.zeros((), device=inputs.device)
        correct = torch.zeros((), device=inputs.device, dtype=torch.long)
        seen = 0  # n, but for Poisson-sampled batches
        for idx in batches:
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped in epoch {epoch + 1} of {recipe.epochs}")
            seen += len(idx)
            x, y = inputs[idx], targets[idx]
            if options.augment:
                x = random_crop_flip(x, device_generator)
            x = x.contiguous(memory_format=fmt)
            with autocast:
                logits = forward(x)
            logits = logits.float()  # the loss in float32 whatever the forward pass ran in
            batch_loss = loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(batch_loss).backward()
            scaler.step(optimizer)
            scaler.update()
            # Accumulate on the device; one host sync per epoch instead of per batch.
            total_loss += batch_loss.detach() * len(idx)
            classes = y if target_class is None else target_class(y)
            correct += (logits.detach().argmax(dim=1) == classes).sum()
        if on_epoch is not None:
            record = EpochRecord(
                epoch=epoch + 1,
                loss=float(total_loss) / seen,
                accuracy=float(correct) / seen,
                lr=lr,
                seconds=time.perf_counter() - started,
                samples=seen,
                epsilon=None if private is None else private.epsilon(),
            )
            on_epoch(record, model)
    if private is not None:
        model = private.release()
    model.eval()
    return model
