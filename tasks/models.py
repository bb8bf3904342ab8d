"""Model-side helpers of the train, reference, distill and sequences tasks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from seqmia.artifacts import load_state_dict
from seqmia.config import Params, TrainParams
from seqmia.data.inputs import input_shape, num_classes
from seqmia.models import ModelOptions, build_model, count_parameters
from seqmia.runtime import resolve_precision
from seqmia.seeding import make_generator
from seqmia.training import Recipe, accuracy, fit, predict_logits
from tasks.common import record_timing
from tasks.stopping import stop_requested


def new_model(
    train: TrainParams,
    dataset: dict[str, np.ndarray],
    generator: torch.Generator,
    shape: tuple[int, ...] | None = None,
):
    """A freshly initialised ``train.model`` (with its ``train.*`` options) for this dataset;
    ``shape`` overrides the input shape (a given target's own preprocessing)."""
    options = ModelOptions(
        mlp_widths=train.mlp_widths,
        mlp_activation=train.mlp_activation,
        wrn_depth=train.wrn_depth,
        wrn_width=train.wrn_width,
    )
    shape = input_shape(dataset["x"]) if shape is None else shape
    return build_model(train.model, shape, num_classes(dataset), generator, options)


def load_model(
    train: TrainParams, dataset: dict[str, np.ndarray], path: Path, device: torch.device
) -> torch.nn.Module:
    """``train.model`` with the weights saved at ``path`` (weights only), in eval mode."""
    model = new_model(train, dataset, make_generator(0, "load"))
    model.load_state_dict(load_state_dict(path))
    return model.to(device).eval()


def recipe_from(train: TrainParams, device: torch.device, epochs: int | None = None) -> Recipe:
    """The optimisation recipe of ``train.*`` on ``device``, optionally with another epoch
    count."""
    return Recipe(
        epochs=train.epochs if epochs is None else epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        schedule=train.schedule,
        step_size=train.step_size,
        gamma=train.gamma,
        min_lr=train.min_lr,
        augment=train.augment,
        precision=resolve_precision(train.precision, device),
    )


def epoch_logger(logger, label: str, total: int):
    """``on_epoch`` callback that logs loss, accuracy, rate and throughput of each epoch."""

    def log(stats, model=None) -> None:
        logger.info(
            "%s epoch %d/%d  loss %.4f  acc %.4f  lr %.5f  %.1fs  %.0f samples/s",
            label, stats.epoch, total, stats.loss, stats.accuracy, stats.lr, stats.seconds,
            stats.samples / max(stats.seconds, 1e-9),
        )  # fmt: skip

    return log


def train_classifier(
    params: Params,
    dataset: dict[str, np.ndarray],
    train: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
    device: torch.device,
    logger,
    label: str,
) -> tuple[torch.nn.Module, dict]:
    """A fresh ``train.model`` fitted with the ``train.*`` recipe on ``train`` (inputs, labels).

    Logs every epoch under ``label``. Returns the model (on CPU's memory if ``device`` is CPU)
    and a report: model, parameters, accuracy on ``train`` and on ``held_out``, seconds, history.
    """
    x_train, y_train = train
    model = new_model(params.train, dataset, generator).to(device)
    logger.info(
        "%s: %s (%d parameters) on %s, %d training samples",
        label, params.train.model, count_parameters(model), device, len(y_train),
    )  # fmt: skip
    history: list[dict] = []
    log = epoch_logger(logger, f"{label} train", params.train.epochs)

    def on_epoch(stats, _model) -> None:
        history.append({k: v for k, v in vars(stats).items() if k != "seconds"})
        log(stats)

    started = time.perf_counter()
    fit(
        model, x_train.to(device), y_train.to(device), recipe_from(params.train, device), generator,
        on_epoch=on_epoch, should_stop=stop_requested,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    record_timing(f"{label} train", seconds)
    report = {
        "model": params.train.model,
        "parameters": count_parameters(model),
        "train_accuracy": accuracy(predict_logits(model, x_train), y_train),
        "test_accuracy": accuracy(predict_logits(model, held_out[0]), held_out[1]),
        "train_samples": len(y_train),
        "history": history,
    }
    logger.info(
        "%s: train accuracy %.4f, test accuracy %.4f, %.0fs",
        label, report["train_accuracy"], report["test_accuracy"], seconds,
    )  # fmt: skip
    return model, report
