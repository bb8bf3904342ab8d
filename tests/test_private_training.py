"""DP-SGD in the core: the plan (noise for an ε, δ against N), the adapted architecture, and the
one training loop with Opacus's mechanism and accountant, on tiny tensors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from seqmia.base.errors import UserError
from seqmia.base.seeding import make_generator
from seqmia.models.build import dp_adaptation, load_model, new_model
from seqmia.models.registry import Architecture, ModelOptions
from seqmia.training.classifier import train_classifier
from seqmia.training.loop import FitOptions
from seqmia.training.private import PrivacyRequest, plan_private_training, sample_rate
from seqmia.training.recipe import Recipe

OPTIONS = ModelOptions(mlp_widths=(8,), mlp_activation="tanh", wrn_depth=16, wrn_width=1)
CNN = Architecture("small_cnn", OPTIONS, dp_trainable=True)
RECIPE = Recipe(
    optimizer="sgd",
    epochs=3,
    batch_size=16,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    step_size=1,
    gamma=0.9,
    min_lr=0.0,
)
REQUEST = PrivacyRequest(epsilon=4.0, noise_multiplier=0.0, max_grad_norm=1.0, delta=1e-3)


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_the_plan_finds_the_noise_for_the_epsilon_and_more_epsilon_means_less_noise():
    loose = plan_private_training(dataclasses.replace(REQUEST, epsilon=16.0), 500, 50, 10)
    tight = plan_private_training(dataclasses.replace(REQUEST, epsilon=1.0), 500, 50, 10)
    assert tight.noise_multiplier > loose.noise_multiplier > 0
    assert tight.target_epsilon == 1.0 and tight.sample_rate == 0.1 and tight.epochs == 10


def test_a_given_noise_multiplier_is_used_as_it_is():
    plan = plan_private_training(
        dataclasses.replace(REQUEST, epsilon=0.0, noise_multiplier=0.7), 100, 30, 2
    )
    assert plan.noise_multiplier == 0.7 and plan.target_epsilon is None
    assert plan.sample_rate == sample_rate(100, 30) == 0.25  # 4 batches per epoch


def test_a_delta_of_one_over_n_or_more_and_no_noise_are_refused():
    with pytest.raises(UserError, match=r"dp.delta is 0.01.*N = 100.*below 1/N = 0.01"):
        plan_private_training(dataclasses.replace(REQUEST, delta=0.01), 100, 10, 1)
    plan_private_training(dataclasses.replace(REQUEST, delta=0.0099), 100, 10, 1)
    with pytest.raises(UserError, match="no noise"):
        plan_private_training(dataclasses.replace(REQUEST, epsilon=0.0), 100, 10, 1)


def test_a_dp_trainable_cnn_has_group_norm_and_no_batch_norm_and_loads_back(tmp_path):
    model = new_model(CNN, (3, 16, 16), 4, make_generator(0, "t"))
    kinds = {type(m) for m in model.modules()}
    assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds
    assert not any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert dp_adaptation(model).startswith("5 BatchNorm2d layers replaced by GroupNorm")
    mlp = new_model(dataclasses.replace(CNN, name="mlp"), (20,), 4, make_generator(0, "t"))
    assert dp_adaptation(mlp) == "none: Opacus trains this architecture as it is"
    plain = new_model(
        dataclasses.replace(CNN, dp_trainable=False), (3, 16, 16), 4, make_generator(0, "t")
    )
    assert nn.BatchNorm2d in {type(m) for m in plain.modules()}
    # The convolutions draw the same initial weights: only the normalisation changes.
    assert torch.equal(model.features[0].weight, plain.features[0].weight)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(CNN, (3, 16, 16), 4, path, torch.device("cpu"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )


def private_fit(seed: int, epochs: int = RECIPE.epochs):
    x, y = images(96)
    plan = plan_private_training(REQUEST, len(y), RECIPE.batch_size, epochs)
    model = new_model(CNN, (3, 16, 16), 4, make_generator(seed, "model"))
    recipe = dataclasses.replace(RECIPE, epochs=epochs)
    return train_classifier(
        model,
        (x, y),
        images(32, 1),
        recipe,
        make_generator(seed, "fit"),
        options=FitOptions(private=plan),
    ), plan


def test_private_training_spends_the_planned_epsilon_and_reports_it():
    (model, report), plan = private_fit(0)
    spent = report["dp"]["epsilon_spent"]
    # The accountant counts the steps taken: epochs / sample_rate of them, as planned.
    assert spent == pytest.approx(REQUEST.epsilon, rel=0.05)
    assert report["dp"]["noise_multiplier"] == plan.noise_multiplier
    assert report["dp"]["accountant"] == "rdp" and "GroupNorm" in report["dp"]["adaptation"]
    epsilons = [e["epsilon"] for e in report["history"]]
    assert epsilons == sorted(epsilons) and epsilons[-1] == spent  # grows epoch by epoch
    # Poisson batches: an epoch sees about N samples, not exactly N.
    assert all(e["samples"] > 0 for e in report["history"])
    # The model comes back without Opacus's wrapper or hooks: plain keys, eval mode.
    assert not any(k.startswith("_module") for k in model.state_dict())
    assert not model.training and not hasattr(model, "_forward_counter")


def test_private_training_is_reproducible_for_a_seed_and_noisy_across_seeds():
    (a, _), _ = private_fit(0, epochs=1)
    (b, _), _ = private_fit(0, epochs=1)
    (c, _), _ = private_fit(1, epochs=1)
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )


def test_a_plain_training_report_has_no_dp_entry_and_no_epsilon():
    x, y = images(48)
    model = new_model(
        dataclasses.replace(CNN, dp_trainable=False), (3, 16, 16), 4, make_generator(0, "m")
    )
    _, report = train_classifier(
        model, (x, y), images(16, 1), dataclasses.replace(RECIPE, epochs=1), make_generator(0, "f")
    )
    assert "dp" not in report and all("epsilon" not in e for e in report["history"])
    assert report["history"][0]["samples"] == 48
