"""Classifier training in the core: inputs made batch by batch from stored rows,
``train_classifier``'s report, and building/loading the pipeline's models."""

from __future__ import annotations

import copy
import dataclasses
import os

import numpy as np
import pytest
import torch

from seqmia.base.artifacts import load_npz, save_state_dict, write_npz
from seqmia.data.batches import BatchedInputs, stored_inputs
from seqmia.data.inputs import normalisation_stats, to_model_input
from seqmia.data.samples import gather_rows
from seqmia.models.build import load_model, new_model
from seqmia.models.inference import accuracy, predict_logits
from seqmia.models.registry import Architecture, ModelOptions
from seqmia.training.classifier import epoch_logger, train_classifier
from seqmia.training.loop import FitOptions, fit
from seqmia.training.recipe import Recipe

OPTIONS = ModelOptions(mlp_widths=(8,), mlp_activation="tanh", wrn_depth=16, wrn_width=1)
TRAIN = Architecture("small_cnn", OPTIONS)
RECIPE = Recipe(
    optimizer="sgd",
    epochs=2,
    batch_size=8,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    step_size=1,
    gamma=0.5,
    min_lr=0.0,
)


def _images(n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    mean, std = normalisation_stats(x)
    return {"x": x, "y": rng.integers(0, 4, n), "mean": mean, "std": std}


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_batches_are_bit_identical_to_converting_the_whole_part():
    data = _images()
    whole = to_model_input(data["x"], data["mean"], data["std"])  # (30, 3, 8, 8)
    images = BatchedInputs(data["x"], data["mean"], data["std"])
    assert images.shape == (30, 3, 8, 8) and images.ndim == 4 and len(images) == 30
    idx = torch.tensor([7, 0, 29, 7])
    assert torch.equal(images[idx], whole[idx])
    assert torch.equal(images[3:11], whole[3:11])
    assert torch.equal(images.materialise(), whole)


def test_feature_rows_become_standardised_vectors():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    rows = BatchedInputs(x, np.full(3, 1.0, np.float32), np.full(3, 2.0, np.float32))
    assert rows.shape == (4, 3) and rows.ndim == 2
    assert torch.equal(rows[torch.tensor([1])], torch.tensor([[1.0, 1.5, 2.0]]))


def test_stored_inputs_pick_rows_and_labels_by_id():
    data = _images()
    ids = np.array([4, 2, 9])
    inputs, labels = stored_inputs(data, ids)
    assert torch.equal(labels, torch.from_numpy(data["y"][ids]).long())
    assert torch.equal(
        inputs[torch.arange(3)], to_model_input(data["x"][ids], data["mean"], data["std"])
    )


def test_fit_on_batches_equals_fit_on_the_float_tensor():
    data = _images()
    start = new_model(TRAIN, (3, 8, 8), 4, torch.Generator().manual_seed(0))
    y = torch.from_numpy(data["y"]).long()
    whole = to_model_input(data["x"], data["mean"], data["std"])
    augment = FitOptions(augment=True)
    a = fit(
        copy.deepcopy(start), whole, y, RECIPE, torch.Generator().manual_seed(1), options=augment
    )
    images = BatchedInputs(data["x"], data["mean"], data["std"])
    b = fit(
        copy.deepcopy(start), images, y, RECIPE, torch.Generator().manual_seed(1), options=augment
    )
    assert _same_state(a, b)
    assert torch.equal(predict_logits(a, whole, 7), predict_logits(b, images, 7))


def test_train_classifier_reports_what_it_measured():
    data, held = _images(30, 0), _images(20, 1)
    members = stored_inputs(data, np.arange(30))
    held_out = stored_inputs(held, np.arange(20))
    seen = []
    model, report = train_classifier(
        new_model(TRAIN, (3, 8, 8), 4, torch.Generator().manual_seed(0)),
        members,
        held_out,
        RECIPE,
        torch.Generator().manual_seed(1),
        on_epoch=lambda s, m: seen.append(s.epoch),
    )
    assert seen == [1, 2] and [h["epoch"] for h in report["history"]] == [1, 2]
    assert all("seconds" not in h for h in report["history"])
    assert report["train_samples"] == 30
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["train_accuracy"] == accuracy(predict_logits(model, members[0]), members[1])
    assert report["test_accuracy"] == accuracy(predict_logits(model, held_out[0]), held_out[1])
    assert not model.training
    again, _ = train_classifier(
        new_model(TRAIN, (3, 8, 8), 4, torch.Generator().manual_seed(0)),
        members,
        held_out,
        RECIPE,
        torch.Generator().manual_seed(1),
    )
    assert _same_state(model, again)


def test_train_classifier_learns_a_separable_task():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 64)
    x = np.where(y[:, None, None, None] == 1, 200, 40).astype(np.uint8) + rng.integers(
        0, 20, (64, 8, 8, 3), dtype=np.uint8
    )
    data = {"x": x, "y": y, **dict(zip(("mean", "std"), normalisation_stats(x), strict=True))}
    recipe = dataclasses.replace(RECIPE, epochs=5)
    train, held = stored_inputs(data, np.arange(48)), stored_inputs(data, np.arange(48, 64))
    model = new_model(TRAIN, (3, 8, 8), 2, torch.Generator().manual_seed(0))
    _, report = train_classifier(model, train, held, recipe, torch.Generator().manual_seed(1))
    assert report["train_accuracy"] == 1.0 and report["test_accuracy"] == 1.0


def test_epoch_logger_formats_each_epoch():
    lines = []

    class Logger:
        def info(self, fmt, *args):
            lines.append(fmt % args)

    x, y = stored_inputs(_images(), np.arange(30))
    model = new_model(TRAIN, (3, 8, 8), 4, torch.Generator().manual_seed(0))
    log = epoch_logger(Logger(), "shadow train", 2)
    fit(model, x, y, RECIPE, torch.Generator().manual_seed(1), on_epoch=log)
    seen = [line.split("  ")[0] for line in lines]
    assert seen == ["shadow train epoch 1/2", "shadow train epoch 2/2"]


@pytest.mark.parametrize("model", ["small_cnn", "mlp"])
def test_new_model_is_seeded_and_load_model_restores_it(tmp_path, model):
    train = Architecture(model, OPTIONS)
    a = new_model(train, (3, 8, 8), 4, torch.Generator().manual_seed(5))
    b = new_model(train, (3, 8, 8), 4, torch.Generator().manual_seed(5))
    c = new_model(train, (3, 8, 8), 4, torch.Generator().manual_seed(6))
    assert _same_state(a, b) and not _same_state(a, c)
    save_state_dict(tmp_path / "m.pt", a)
    loaded = load_model(train, (3, 8, 8), 4, tmp_path / "m.pt", torch.device("cpu"))
    assert _same_state(a, loaded) and not loaded.training


def _resident_kib(path) -> int:
    """KiB of ``path``'s mappings resident in this process (Linux /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_gather_rows_copies_rows_of_a_mapped_file_and_drops_its_pages(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8)
    write_npz(tmp_path / "d.npz", x=x)
    mapped = load_npz(tmp_path / "d.npz")["x"]
    assert isinstance(mapped.base, np.memmap)  # the case this is for
    ids = np.arange(0, 2000, 7)
    mapped[ids].sum()  # a plain gather leaves most of the 6 MiB file resident
    assert _resident_kib(tmp_path / "d.npz") > 1024
    rows = gather_rows(mapped, ids)
    assert np.array_equal(rows, x[ids])
    assert _resident_kib(tmp_path / "d.npz") == 0
    assert np.array_equal(gather_rows(mapped, ids[:3]), x[ids[:3]])  # the file reads again
