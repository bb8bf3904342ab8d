"""Per-sample posterior metrics of seqmia.attacks.seqmia.metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from seqmia.attacks.seqmia.metric_registry import METRICS
from seqmia.attacks.seqmia.metrics import compute_metrics

P = [0.7, 0.2, 0.1]
LOGITS = torch.tensor([[math.log(x) for x in P]], dtype=torch.float64)

# Hand-computed with math.log for p = [0.7, 0.2, 0.1].
EXPECTED = {
    0: {
        "loss": -math.log(0.7),
        "max": 0.7,
        "sd": math.sqrt(((0.7 - 1 / 3) ** 2 + (0.2 - 1 / 3) ** 2 + (0.1 - 1 / 3) ** 2) / 3),
        "entropy": -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
        "m_entropy": -(0.3 * math.log(0.7)) - 0.2 * math.log(0.8) - 0.1 * math.log(0.9),
    },
    2: {
        "loss": -math.log(0.1),
        "max": 0.7,
        "sd": math.sqrt(((0.7 - 1 / 3) ** 2 + (0.2 - 1 / 3) ** 2 + (0.1 - 1 / 3) ** 2) / 3),
        "entropy": -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
        "m_entropy": -(0.9 * math.log(0.1)) - 0.7 * math.log(0.3) - 0.2 * math.log(0.8),
    },
}


@pytest.mark.parametrize(
    ("label", "name", "decimal"),
    [
        (0, "loss", 0.356675),
        (0, "sd", 0.262467),
        (0, "entropy", 0.801819),
        (0, "m_entropy", 0.162167),
        (2, "m_entropy", 2.959736),
    ],
)
def test_metric_matches_value_worked_out_on_paper(label, name, decimal):
    # Decimal values worked out by hand, independent of the formulas in EXPECTED above.
    got = compute_metrics(LOGITS, torch.tensor([label]), [name])
    assert got.item() == pytest.approx(decimal, abs=1e-6)


@pytest.mark.parametrize("label", [0, 2])
@pytest.mark.parametrize("name", list(EXPECTED[0]))
def test_metric_matches_hand_value(name, label):
    labels = torch.tensor([label])
    got = compute_metrics(LOGITS, labels, [name])
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(EXPECTED[label][name], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("label", [0, 2])
@pytest.mark.parametrize("name", list(EXPECTED[0]))
def test_metric_function_directly(name, label):
    log_p = torch.log_softmax(LOGITS, dim=1)
    got = METRICS[name](log_p, torch.tensor([label]))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(EXPECTED[label][name], rel=1e-12, abs=1e-15)


def test_float32_logits_are_computed_in_float64():
    got = compute_metrics(LOGITS.float(), torch.tensor([0]), ["loss"])
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(-math.log(0.7), rel=1e-6)


def test_confident_correct_loss_does_not_saturate():
    labels = torch.tensor([0])
    loss_40 = compute_metrics(torch.tensor([[40.0, 0.0, 0.0]]), labels, ["loss"]).item()
    loss_45 = compute_metrics(torch.tensor([[45.0, 0.0, 0.0]]), labels, ["loss"]).item()
    # -log p_0 = log(1 + 2 e^-40) ~ 2 e^-40 ~ 8.5e-18: representable in float64.
    assert loss_40 > 0
    assert loss_40 != loss_45
    assert loss_40 == pytest.approx(2 * math.exp(-40), rel=1e-6)
    assert loss_45 == pytest.approx(2 * math.exp(-45), rel=1e-6)


def test_confidently_wrong_sample_is_finite_and_only_the_loss_is_capped():
    logits = torch.tensor([[0.0, 800.0, 0.0]])
    got = compute_metrics(logits, torch.tensor([0]), ["loss", "m_entropy", "entropy"])
    assert torch.isfinite(got).all()
    # The loss keeps the official code's cap at -log(1e-30).
    assert got[0, 0].item() == pytest.approx(-math.log(1e-30), rel=1e-12)
    assert got[0, 0].item() == pytest.approx(69.0776, abs=1e-4)
    # The modified entropy does not: its label term is -(1 - p_0) log p_0 = 800 (p_0 = e^-800
    # rounds to 0 but log p_0 = -800 is exact); the p_1 ~ 1 term is -log(1 - p_1), where
    # 1 - p_1 = 2 e^-800 has no float64 value left and is taken as 1e-300.
    assert got[0, 1].item() == pytest.approx(800 - math.log(1e-300), rel=1e-12)


def _exact_metrics(logits: list[float], label: int) -> tuple[float, float]:
    """(entropy, modified entropy) of softmax(logits) with 500 significant digits (mpmath), enough
    for 1 - p of the top class, about e^-210 at the largest margin tested."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(500):
        z = [mpmath.mpf(v) for v in logits]
        total = mpmath.fsum(mpmath.exp(v) for v in z)
        p = [mpmath.exp(v) / total for v in z]
        entropy = -mpmath.fsum(pi * mpmath.log(pi) for pi in p)
        m_entropy = -(1 - p[label]) * mpmath.log(p[label]) - mpmath.fsum(
            pi * mpmath.log(1 - pi) for i, pi in enumerate(p) if i != label
        )
        return float(entropy), float(m_entropy)


@pytest.mark.parametrize("margin", [5, 40, 69, 75, 87, 120, 200, 300])
@pytest.mark.parametrize("correct", [True, False])
def test_entropies_are_exact_up_to_large_logit_margins(margin, correct):
    """Against 500-digit arithmetic, for a confident right (label = argmax) and a confident wrong
    answer; with a floor at 1e-30 both were constant from a margin of about 75."""
    logits = [0.0, float(margin), 0.3 * margin, -2.0]
    label = 1 if correct else 3
    got = compute_metrics(
        torch.tensor([logits], dtype=torch.float64), torch.tensor([label]), ["entropy", "m_entropy"]
    )
    entropy, m_entropy = _exact_metrics(logits, label)
    assert got[0, 0].item() == pytest.approx(entropy, rel=1e-12)
    assert got[0, 1].item() == pytest.approx(m_entropy, rel=1e-12)


def test_entropies_keep_ranking_confident_samples_without_ties():
    """Members of a confident model: a larger margin is a lower (modified) entropy, all distinct."""
    margins = torch.arange(60.0, 201.0, 5.0)
    logits = torch.stack([torch.zeros_like(margins), margins, torch.zeros_like(margins)], dim=1)
    got = compute_metrics(
        logits, torch.ones(len(margins), dtype=torch.long), ["entropy", "m_entropy"]
    )
    for j in range(2):
        values = got[:, j]
        assert (values > 0).all() and (values[1:] < values[:-1]).all()


def test_compute_metrics_shape_dtype_and_order():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g)
    labels = torch.randint(0, 4, (6,), generator=g)
    names = ["m_entropy", "loss", "max"]
    got = compute_metrics(logits, labels, names)
    assert got.shape == (6, 3)
    assert got.dtype == torch.float64
    for j, name in enumerate(names):
        single = compute_metrics(logits, labels, [name])[:, 0]
        torch.testing.assert_close(got[:, j], single, rtol=0, atol=0)
    expected_loss = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none")
    torch.testing.assert_close(got[:, 1], expected_loss)


def test_unknown_metric_raises():
    with pytest.raises(ValueError, match="nope"):
        compute_metrics(LOGITS, torch.tensor([0]), ["loss", "nope"])
