"""The one training recipe: optimiser and schedule built exactly as the loops did before."""

from __future__ import annotations

import pytest
import torch

from seqmia.training.recipe import (
    Recipe,
    as_recipe,
    decay_groups,
    lr_for_epoch,
    make_optimizer,
    step_lr,
)

SGD = Recipe(
    optimizer="sgd",
    epochs=10,
    batch_size=4,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    step_size=2,
    gamma=0.5,
    min_lr=0.01,
)
ADAM = Recipe(
    optimizer="adam",
    epochs=10,
    batch_size=4,
    lr=0.01,
    momentum=0.0,
    weight_decay=1e-4,
    schedule="step",
    step_size=3,
    gamma=0.9,
    min_lr=5e-4,
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = (torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    return torch.nn.Sequential(*layers)


def _steps(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, 3, generator=g)
        loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("recipe", "before"),
    [
        # What seqmia.training.loop.fit built before the shared recipe: SGD with momentum.
        (
            SGD,
            lambda m, r: torch.optim.SGD(
                decay_groups(m, r.weight_decay), lr=r.lr, momentum=r.momentum
            ),
        ),
        # What seqmia.attacks.networks.train_attack built before: Adam.
        (ADAM, lambda m, r: torch.optim.Adam(decay_groups(m, r.weight_decay), lr=r.lr)),
    ],
)
def test_optimizer_steps_bit_identical_to_the_former_construction(recipe, before):
    a, b = _model(), _model()
    got = _steps(make_optimizer(a, recipe), a)
    want = _steps(before(b, recipe), b)
    assert all(torch.equal(x, y) for x, y in zip(got, want, strict=True))


def test_step_schedule_is_the_former_step_lr():
    for recipe in (SGD, ADAM):
        got = [lr_for_epoch(recipe, e) for e in range(recipe.epochs)]
        assert got == [
            step_lr(e, recipe.lr, recipe.step_size, recipe.gamma, recipe.min_lr)
            for e in range(recipe.epochs)
        ]


def test_unknown_optimizer_and_schedule_are_refused():
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(_model(), as_recipe(SGD, optimizer="rmsprop"))
    with pytest.raises(ValueError, match="schedule"):
        lr_for_epoch(as_recipe(SGD, schedule="linear"), 0)


def test_as_recipe_takes_the_recipe_fields_and_changes():
    assert as_recipe(SGD) == SGD
    assert as_recipe(SGD, epochs=3).epochs == 3
