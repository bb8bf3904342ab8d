"""Stage 1: the pipeline's classifiers (target, shadow and reference models) fitted on their
members with cross-entropy, and measured."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from seqmia.models.architectures import count_parameters
from seqmia.models.build import dp_adaptation
from seqmia.models.inference import accuracy, predict_logits
from seqmia.training.loop import EpochRecord, FitOptions, fit
from seqmia.training.private import plan_report
from seqmia.training.recipe import Recipe


def epoch_logger(logger, label: str, total: int) -> Callable[..., None]:
    """``on_epoch`` hook that logs loss, accuracy, rate and throughput of each epoch to
    ``logger`` (anything with ``info(fmt, *args)``)."""

    def log(record: EpochRecord, model: nn.Module | None = None) -> None:
        logger.info(
            "%s epoch %d/%d  loss %.4f  acc %.4f  lr %.5f  %.1fs  %.0f samples/s",
            label,
            record.epoch,
            total,
            record.loss,
            record.accuracy,
            record.lr,
            record.seconds,
            record.samples / max(record.seconds, 1e-9),
        )

    return log


def history_entry(record: EpochRecord) -> dict:
    """An epoch of a classifier's report: what it did, without its wall time (and the ε spent
    so far if the training is private)."""
    entry = {k: getattr(record, k) for k in ("epoch", "loss", "accuracy", "lr", "samples")}
    if record.epsilon is not None:
        entry["epsilon"] = record.epsilon
    return entry


def train_classifier(
    model: nn.Module,
    train: tuple,
    held_out: tuple,
    recipe: Recipe,
    generator: torch.Generator,
    on_epoch: Callable[[EpochRecord, nn.Module], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    options: FitOptions = FitOptions(),
) -> tuple[nn.Module, dict]:
    """Fit the fresh ``model`` (already on its device) with ``recipe`` on ``train`` and measure it.

    train, held_out: (inputs, labels) with inputs (N, C, H, W) / (N, D) as a tensor or
    ``BatchedInputs`` on the model's device and labels (N,) int64 on the same device.
    Returns the model (eval mode) and a report: parameters, top-1 accuracy on ``train`` and on
    ``held_out``, the training-set size and the history (every epoch's record but its seconds);
    with ``options.private``, also ``dp``: the plan and the ε spent (``plan_report``).
    Accuracies are computed ``recipe.batch_size`` samples at a time: the training batch is the
    largest set of activations the stage holds anyway.
    """
    x_train, y_train = train
    history: list[dict] = []

    def record(epoch: EpochRecord, trained: nn.Module) -> None:
        history.append(history_entry(epoch))
        if on_epoch is not None:
            on_epoch(epoch, trained)

    fit(
        model,
        x_train,
        y_train,
        recipe,
        generator,
        on_epoch=record,
        should_stop=should_stop,
        options=options,
    )
    batch = recipe.batch_size
    report = {
        "parameters": count_parameters(model),
        "train_accuracy": accuracy(predict_logits(model, x_train, batch), y_train.cpu()),
        "test_accuracy": accuracy(predict_logits(model, held_out[0], batch), held_out[1].cpu()),
        "train_samples": len(y_train),
        "history": history,
    }
    if options.private is not None:
        report["dp"] = plan_report(options.private, history[-1]["epsilon"], dp_adaptation(model))
    return model, report
