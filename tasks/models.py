"""Model-side helpers of the train, reference, distill and sequences tasks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqmia.artifacts import load_state_dict
from seqmia.data import input_shape as sample_shape
from seqmia.data import to_model_input
from seqmia.layout import Layout
from seqmia.models import ModelOptions, build_model, count_parameters
from seqmia.params.schema import StageParams as Params
from seqmia.params.train import TrainParams
from seqmia.partition import part_ids
from seqmia.recipe import Recipe, as_recipe
from seqmia.runtime import resolve_precision
from seqmia.seeding import make_generator
from seqmia.training import accuracy, fit, predict_logits
from tasks.common import load_prepared, record_timing
from tasks.stopping import stop_requested


def part_tensors(
    dataset: dict[str, np.ndarray], partition: pd.DataFrame, part: str
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Sample ids (n,), normalised inputs (n, C, H, W) or (n, D) and labels (n,) of one part."""
    ids = part_ids(partition, part)
    return (ids, *sample_tensors(dataset, ids))


def sample_tensors(
    dataset: dict[str, np.ndarray], ids: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs (n, C, H, W) or (n, D) and labels (n,) of the samples ``ids`` (n,)."""
    x = to_model_input(dataset["x"][ids], dataset["mean"], dataset["std"])
    y = torch.from_numpy(dataset["y"][ids].astype(np.int64))
    return x, y


def attack_samples(layout: Layout, role: str) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """The role's members then non-members: a table (sample_id, part, member, label), inputs and
    labels."""
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    tables, inputs, labels = [], [], []
    for part, member in ((f"{role}_in", 1), (f"{role}_out", 0)):
        ids, x, y = part_tensors(dataset, partition, part)
        tables.append(pd.DataFrame({"sample_id": ids, "part": part, "member": member, "label": y}))
        inputs.append(x)
        labels.append(y)
    return pd.concat(tables, ignore_index=True), torch.cat(inputs), torch.cat(labels)


# RMIA's population samples z: the attacker's distillation part, which the attacker queries the
# audited model on anyway and which no target, shadow or reference model trains on.
POPULATION_PART = "distill"


def population_samples(layout: Layout) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """RMIA's population: a table (sample_id, label), inputs and labels of the distillation part."""
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    ids, x, y = part_tensors(dataset, partition, POPULATION_PART)
    return pd.DataFrame({"sample_id": ids, "label": y.numpy()}), x, y


def input_shape(dataset: dict[str, np.ndarray]) -> tuple[int, ...]:
    """(C, H, W) of the prepared images, (D,) of prepared feature vectors."""
    return sample_shape(dataset["x"])


def num_classes(dataset: dict[str, np.ndarray]) -> int:
    """Number of classes of the prepared dataset."""
    return len(dataset["classes"])


def new_model(
    params: Params,
    dataset: dict[str, np.ndarray],
    generator: torch.Generator,
    shape: tuple[int, ...] | None = None,
):
    """A freshly initialised ``train.model`` (with its ``train.*`` options) for this dataset;
    ``shape`` overrides the input shape (a given target's own preprocessing)."""
    train = params.train
    options = ModelOptions(
        mlp_widths=train.mlp_widths,
        mlp_activation=train.mlp_activation,
        wrn_depth=train.wrn_depth,
        wrn_width=train.wrn_width,
    )
    shape = input_shape(dataset) if shape is None else shape
    return build_model(train.model, shape, num_classes(dataset), generator, options)


def load_model(
    params: Params, dataset: dict[str, np.ndarray], path: Path, device: torch.device
) -> torch.nn.Module:
    """``train.model`` with the weights saved at ``path`` (weights only), in eval mode."""
    model = new_model(params, dataset, make_generator(0, "load"))
    model.load_state_dict(load_state_dict(path))
    return model.to(device).eval()


def recipe_from(train: TrainParams, epochs: int | None = None) -> Recipe:
    """The optimisation recipe of ``train.*``, optionally with another epoch count."""
    return as_recipe(train, **({} if epochs is None else {"epochs": epochs}))


def fit_options(train: TrainParams, device: torch.device) -> dict:
    """``fit``'s keyword arguments beyond the recipe: augmentation and precision on ``device``."""
    return {"augment": train.augment, "precision": resolve_precision(train.precision, device)}


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
    model = new_model(params, dataset, generator).to(device)
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
        model, x_train.to(device), y_train.to(device), recipe_from(params.train), generator,
        on_epoch=on_epoch, should_stop=stop_requested, **fit_options(params.train, device),
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
