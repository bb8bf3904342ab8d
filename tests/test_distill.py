"""Distillation in the core: epochs per role, soft labels, snapshots streamed per epoch, a teacher
given as a model or as its logits."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from seqmia.data.batches import stored_inputs
from seqmia.data.inputs import normalisation_stats
from seqmia.models.build import new_model
from seqmia.models.inference import predict_logits
from seqmia.models.registry import architecture_of
from seqmia.params.whole import load_params
from seqmia.training.distill import distill, distill_epochs, soft_labels
from seqmia.training.loop import Recipe
from tests.conftest import REPO

TRAIN = architecture_of(load_params(REPO / "params.yaml").train, "small_cnn")
RECIPE = Recipe(
    optimizer="sgd",
    epochs=3,
    batch_size=8,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    step_size=1,
    gamma=0.5,
    min_lr=0.0,
)


def _inputs(n=24):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    mean, std = normalisation_stats(x)
    inputs, _ = stored_inputs(
        {"x": x, "y": np.zeros(n, np.int64), "mean": mean, "std": std}, np.arange(n)
    )
    return inputs


def _model(seed):
    return new_model(TRAIN, (3, 8, 8), 4, torch.Generator().manual_seed(seed))


def _states(snapshots):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in snapshots]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_distill_epochs_per_role():
    assert distill_epochs(5, 2, "target") == (5, 0)
    assert distill_epochs(5, 2, "shadow") == (7, 2)


def test_soft_labels_are_tempered_posteriors():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    probs = soft_labels(logits, 2.0)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    assert torch.allclose(probs[0], torch.softmax(logits[0] / 2.0, dim=0))
    assert torch.allclose(probs[1], torch.full((3,), 1 / 3))
    # A higher temperature flattens the posterior.
    assert soft_labels(logits, 4.0)[0, 0] < probs[0, 0] < soft_labels(logits, 1.0)[0, 0]


def test_snapshots_stream_after_the_skipped_epochs():
    inputs, teacher = _inputs(), _model(0).eval()
    saved, epochs = [], []
    student = distill(
        _model(1),
        teacher,
        inputs,
        RECIPE,
        torch.Generator().manual_seed(2),
        skipped=1,
        on_snapshot=lambda i, m: saved.append((i, _states([m])[0])),
        on_epoch=lambda s, m: epochs.append(s.epoch),
    )
    assert epochs == [1, 2, 3] and [i for i, _ in saved] == [1, 2]
    assert not _equal(saved[0][1], saved[1][1])  # each snapshot is its own epoch's weights
    assert _equal(saved[-1][1], student.state_dict())


def test_teacher_as_model_or_logits_gives_the_same_student():
    inputs, teacher = _inputs(), _model(0).eval()
    start = _model(1)
    a = distill(
        copy.deepcopy(start),
        teacher,
        inputs,
        RECIPE,
        torch.Generator().manual_seed(2),
        temperature=2.0,
    )
    logits = predict_logits(teacher, inputs, RECIPE.batch_size)
    b = distill(
        copy.deepcopy(start),
        logits,
        inputs,
        RECIPE,
        torch.Generator().manual_seed(2),
        temperature=2.0,
    )
    c = distill(
        copy.deepcopy(start),
        logits,
        inputs,
        RECIPE,
        torch.Generator().manual_seed(2),
        temperature=1.0,
    )
    assert _equal(a.state_dict(), b.state_dict())
    assert not _equal(a.state_dict(), c.state_dict())


@pytest.mark.parametrize("seed", [1, 2])
def test_student_moves_towards_the_teacher(seed):
    inputs = _inputs(48)
    teacher = 3 * torch.randn(48, 4, generator=torch.Generator().manual_seed(0))  # its logits
    target = torch.softmax(teacher, dim=1)

    def gap(model):  # cross-entropy of the student's posteriors against the teacher's
        return float(-(target * torch.log_softmax(predict_logits(model, inputs), 1)).sum(1).mean())

    start = _model(seed)
    before = gap(start)
    recipe = dataclasses.replace(RECIPE, epochs=15, step_size=100, gamma=1.0)
    student = distill(
        copy.deepcopy(start), teacher, inputs, recipe, torch.Generator().manual_seed(3)
    )
    assert gap(student) < 0.9 * before


def _snapshots(epochs: int, schedule: str) -> list[dict]:
    """Every snapshot's weights of one distillation of the tiny model over ``epochs``."""
    inputs, teacher = _inputs(), _model(0).eval()
    saved = []
    distill(
        _model(1),
        teacher,
        inputs,
        dataclasses.replace(RECIPE, epochs=epochs, schedule=schedule),
        torch.Generator().manual_seed(2),
        on_snapshot=lambda i, m: saved.append(_states([m])[0]),
    )
    return saved


def test_a_shorter_distillation_is_the_first_snapshots_of_a_longer_one():
    """The budget comparison takes SeqMIA with n snapshots from the first n of a longer run: with
    a step schedule nothing in epoch e depends on how many epochs follow."""
    short, long = _snapshots(2, "step"), _snapshots(3, "step")
    assert len(long) == 3
    assert all(_equal(a, b) for a, b in zip(short, long[:2], strict=True))


def test_a_cosine_schedule_depends_on_the_whole_length():
    """Why the budget comparison refuses a cosine schedule: its rate follows the total epochs."""
    assert not _equal(_snapshots(2, "cosine")[1], _snapshots(3, "cosine")[1])
