"""The attention-LSTM attack model, its initialisation, holdout split and training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqmia.attacks.fit import split_holdout, train_attack
from seqmia.attacks.networks import (
    AttentionLSTM,
    fit_scaler,
    init_attack_weights,
    member_log_odds,
)
from seqmia.base.roc import auc, roc_curve
from seqmia.training.recipe import Recipe


def _model(seed: int, k: int = 5, hidden: int = 7) -> AttentionLSTM:
    return init_attack_weights(AttentionLSTM(k, hidden), torch.Generator().manual_seed(seed))


def test_forward_shape():
    x = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(0))
    assert _model(0)(x).shape == (4, 2)


def test_attention_rows_sum_to_one():
    x = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        alpha = _model(0).attention(x)
    assert alpha.shape == (4, 6)
    assert (alpha >= 0).all()
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(4))


def test_two_layer_model_forward_shape():
    model = AttentionLSTM(3, 4, num_layers=2)
    init_attack_weights(model, torch.Generator().manual_seed(0))
    assert model(torch.zeros(2, 5, 3)).shape == (2, 2)


def test_init_is_reproducible_per_generator_seed():
    a, b, c = _model(3), _model(3), _model(4)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    assert not all(
        torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )


def test_init_bounds():
    model = _model(0, hidden=7)
    lstm_bound = 1 / np.sqrt(7)
    for p in model.rnn.parameters():
        assert p.abs().max() <= lstm_bound
    assert model.head.weight.abs().max() <= 1 / np.sqrt(14)


@pytest.fixture(scope="module")
def members() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.permutation(np.r_[np.ones(37, dtype=int), np.zeros(53, dtype=int)])


def test_split_holdout_stratified_disjoint_complete(members):
    train, val = split_holdout(members, 0.2, seed=5)
    assert not set(train) & set(val)
    np.testing.assert_array_equal(np.sort(np.r_[train, val]), np.arange(len(members)))
    assert (members[val] == 1).sum() == round(0.2 * 37)
    assert (members[val] == 0).sum() == round(0.2 * 53)
    assert (np.diff(train) > 0).all() and (np.diff(val) > 0).all()


def test_split_holdout_deterministic_per_seed(members):
    a, b = split_holdout(members, 0.2, seed=5), split_holdout(members, 0.2, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = split_holdout(members, 0.2, seed=6)
    assert not np.array_equal(a[1], c[1])


def test_fit_scaler_standardize():
    rng = np.random.default_rng(0)
    seq = rng.normal(loc=[3.0, -50.0], scale=[0.1, 20.0], size=(30, 4, 2))
    scaled = fit_scaler(seq, "standardize")(seq).double().numpy().reshape(-1, 2)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-5)


def test_fit_scaler_none_is_identity_and_unknown_raises():
    seq = np.arange(24, dtype=np.float64).reshape(3, 4, 2)
    out = fit_scaler(seq, "none")(seq)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), seq.astype(np.float32))
    with pytest.raises(ValueError):
        fit_scaler(seq, "minmax")


def _easy_task(seed: int, n: int = 200, t: int = 5, k: int = 2):
    """Members' sequences have mean +0.4, non-members' mean -0.4 (noise sd 1)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).long()
    x = torch.randn(n, t, k, generator=g) + 0.4 * (2.0 * y - 1.0)[:, None, None]
    return x, y


RECIPE = dict(
    optimizer="adam",
    epochs=15,
    batch_size=50,
    lr=0.01,
    momentum=0.0,
    weight_decay=1e-4,
    schedule="step",
    step_size=5,
    gamma=0.9,
    min_lr=5e-4,
)


@pytest.fixture(scope="module")
def trained():
    x, y = _easy_task(0)
    x_val, y_val = _easy_task(1, n=100)
    recipe = Recipe(**RECIPE)
    seen = []
    model, history, selected = train_attack(
        init_attack_weights(AttentionLSTM(2, 8), torch.Generator().manual_seed(0)),
        x,
        y,
        x_val,
        y_val,
        recipe,
        torch.Generator().manual_seed(1),
        on_epoch=seen.append,
        selection="best_val_auc",
    )
    return model, history, selected, seen, x_val, y_val


def test_train_attack_learns_easy_task(trained):
    model, history, selected, _, x_val, y_val = trained
    val_auc = auc(roc_curve(member_log_odds(model, x_val), y_val.numpy()))
    assert val_auc > 0.9
    assert len(history) == RECIPE["epochs"]
    assert [h.epoch for h in history] == list(range(1, RECIPE["epochs"] + 1))


def test_best_val_auc_selection(trained):
    model, history, selected, _, x_val, y_val = trained
    best = max(h.val_auc for h in history)
    assert history[selected - 1].val_auc == best
    assert selected == next(h.epoch for h in history if h.val_auc == best)
    # The returned weights are those of the selected epoch.
    val_auc = auc(roc_curve(member_log_odds(model, x_val), y_val.numpy()))
    assert val_auc == pytest.approx(best, abs=1e-9)


def test_on_epoch_gets_every_record(trained):
    _, history, _, seen, _, _ = trained
    assert seen == history


def test_history_lr_follows_schedule(trained):
    _, history, _, _, _, _ = trained
    assert [h.lr for h in history[:6]] == pytest.approx([0.01] * 5 + [0.009])


def test_last_selection_returns_final_epoch():
    x, y = _easy_task(0, n=40)
    recipe = Recipe(**dict(RECIPE, epochs=3))
    _, history, selected = train_attack(
        _model(0, k=2, hidden=4),
        x,
        y,
        x,
        y,
        recipe,
        torch.Generator().manual_seed(0),
        selection="last",
    )
    assert selected == 3 and len(history) == 3


def test_member_log_odds_rank_like_probabilities_without_saturating():
    x = torch.randn(25, 6, 5, generator=torch.Generator().manual_seed(0)) * 100
    model = _model(0)
    scores = member_log_odds(model, x, batch_size=7)
    assert scores.shape == (25,) and scores.dtype == np.float64
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-scores)), probs, rtol=1e-6, atol=1e-12)
    big = torch.nn.Linear(1, 2)
    with torch.no_grad():
        big.weight.copy_(torch.tensor([[-50.0], [50.0]]))
        big.bias.zero_()
    odds = member_log_odds(big, torch.tensor([[1.0], [2.0]]))
    assert odds[1] > odds[0] > 40  # both probabilities round to 1.0; the log-odds still rank


# fit_attack: the one hold-out/scale/train/select path of the attack and baselines stages.


def _shadow(n: int = 40, t: int = 4, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Sequences (n, t, k) whose members sit lower on metric 0, and labels (n,)."""
    rng = np.random.default_rng(1)
    members = np.arange(n) % 2
    x = rng.random((n, t, k)) + 2.0 * (1 - members)[:, None, None] * np.eye(k)[0]
    return x, members


def _recipe(epochs: int = 3) -> Recipe:
    return Recipe(
        optimizer="adam",
        epochs=epochs,
        batch_size=8,
        lr=0.01,
        momentum=0.0,
        weight_decay=0.0,
        schedule="step",
        step_size=10,
        gamma=1.0,
        min_lr=0.0,
    )


def test_fit_attack_is_the_hand_written_steps_bit_for_bit():
    from seqmia.attacks.fit import fit_attack
    from seqmia.attacks.networks import build_attack
    from seqmia.base.seeding import derive_seed, make_generator

    x, members = _shadow()
    fit = fit_attack(x, members, "attention_lstm", _recipe(), 3, 0.25, ("s",), hidden_size=5)
    train, val = split_holdout(members, 0.25, derive_seed(3, "holdout"))
    np.testing.assert_array_equal(fit.train_rows, train)
    np.testing.assert_array_equal(fit.val_rows, val)
    g = make_generator(3, "s")
    model = init_attack_weights(build_attack("attention_lstm", (4, 2), 5), g)
    xs, y = fit_scaler(x[train], "none")(x), torch.from_numpy(members.astype(np.int64))
    model, history, selected = train_attack(
        model, xs[train], y[train], xs[val], y[val], _recipe(), g, selection="best_val_auc"
    )
    numbers = lambda hs: [(h.loss, h.accuracy, h.val_auc, h.lr) for h in hs]  # noqa: E731
    assert fit.selected == selected and numbers(fit.history) == numbers(history)
    for key, value in model.state_dict().items():
        assert torch.equal(fit.model.state_dict()[key], value), key
    assert fit.val_auc == history[selected - 1].val_auc
    np.testing.assert_array_equal(fit.scores(x), member_log_odds(model, xs))


def test_fit_attack_mlp_on_flat_features_and_its_widths():
    from seqmia.attacks.fit import fit_attack

    x, members = _shadow()
    fit = fit_attack(x[:, :, 0], members, "mlp", _recipe(2), 0, 0.25, mlp_widths=(6,))
    assert sum(p.numel() for p in fit.model.parameters()) == 4 * 6 + 6 + 6 * 2 + 2
    assert fit.scores(x[:5, :, 0]).shape == (5,)


def test_fit_seqmia_attack_summary_and_ensemble_streams():
    from seqmia.attacks.fit import fit_attack, fit_seqmia_attack

    x, members = _shadow()
    kwargs = dict(
        architecture="attention_lstm",
        hidden_size=5,
        num_layers=1,
        input_transform="log_loss_metrics",
    )
    fit = fit_seqmia_attack(
        x,
        ["loss", "max"],
        members,
        _recipe(),
        0,
        0.25,
        ensemble=2,
        selection="best_val_auc",
        **kwargs,
    )
    s = fit.summary
    assert len(fit.models) == 2 and len(s["ensemble_members"]) == 2
    assert (s["train_sequences"], s["val_sequences"]) == (30, 10)
    assert s["scaler_log_mask"] == [True, False] and s["metrics"] == ["loss", "max"]
    # Member 1 is the single attack's stream; member 2 its own.
    alone = fit_attack(
        x,
        members,
        "attention_lstm",
        _recipe(),
        0,
        0.25,
        ("attack",),
        transform="log_loss_metrics",
        log_mask=np.array([True, False]),
        hidden_size=5,
    )
    first, second = (m.state_dict()["head.weight"] for m in fit.models)
    assert torch.equal(first, alone.model.state_dict()["head.weight"])
    assert not torch.equal(first, second)


def test_fit_seqmia_attack_log_transform_needs_a_loss_like_metric():
    from seqmia.attacks.fit import fit_seqmia_attack
    from seqmia.base.errors import UserError

    x, members = _shadow()
    with pytest.raises(UserError, match="attack.input_transform.*no loss-like metric"):
        fit_seqmia_attack(
            x,
            ["max", "sd"],
            members,
            _recipe(),
            0,
            0.25,
            architecture="attention_lstm",
            hidden_size=5,
            num_layers=1,
            input_transform="log_loss_metrics",
            ensemble=1,
            selection="best_val_auc",
        )
