"""Stage 4: the attack models (SeqMIA's attention-based RNN, its ablations and the MLPs of the
trained baselines), their input scaling and their membership scores."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from seqmia.attacks.architectures import ATTACKS, INPUT_TRANSFORMS


class SequenceAttack(nn.Module):
    """Recurrent attack over a metric sequence (B, T, k) -> (B, 2) logits.

    With attention (SeqMIA): outputs o_1 … o_T, last hidden state h_T,
    alpha_t = softmax_t(h_T · o_t), c = sum_t alpha_t o_t, logits = Linear([h_T ; c]).
    Without attention (an ablation): logits = Linear(h_T). Class 1 is "member".
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 50,
        num_layers: int = 1,
        cell: str = "lstm",
        attention: bool = True,
    ) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.use_attention = attention
        self.head = nn.Linear((2 if attention else 1) * hidden_size, 2)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, state = self.rnn(x)  # outputs (B, T, H)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers, B, H)
        return outputs, h_n[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, h_last = self._encode(x)
        if not self.use_attention:
            return self.head(h_last)  # (B, 2)
        alpha = self._weights(outputs, h_last)  # (B, T)
        context = (alpha.unsqueeze(2) * outputs).sum(dim=1)  # (B, H)
        return self.head(torch.cat([h_last, context], dim=1))  # (B, 2)

    @staticmethod
    def _weights(outputs: torch.Tensor, h_last: torch.Tensor) -> torch.Tensor:
        scores = torch.bmm(outputs, h_last.unsqueeze(2)).squeeze(2)  # (B, T)
        return torch.softmax(scores, dim=1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights over time. x: (B, T, k) -> (B, T)."""
        return self._weights(*self._encode(x))


class AttentionLSTM(SequenceAttack):
    """The SeqMIA attack model: one-layer LSTM (hidden 50 officially) with attention."""

    def __init__(self, input_size: int, hidden_size: int = 50, num_layers: int = 1) -> None:
        super().__init__(input_size, hidden_size, num_layers, cell="lstm", attention=True)


class FlatMLP(nn.Module):
    """MLP over the flattened input (B, ...) -> (B, 2), ReLU between layers.

    TrajectoryMIA's attack is ``widths=(512, 128, 32)`` on the loss trajectory; ML-Leaks' is
    ``(64,)`` on the sorted top-k posteriors; with (T, k) sequences it is the "no time order"
    ablation of SeqMIA.
    """

    def __init__(self, input_size: int, widths: tuple[int, ...] = (512, 128, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in widths:
            layers += [nn.Linear(input_size, width), nn.ReLU()]
            input_size = width
        layers.append(nn.Linear(input_size, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# The builders that seqmia.attacks.architectures.ATTACKS names:
# (input_shape, hidden_size, num_layers, mlp_widths) -> attack model.
def recurrent_attack(
    shape: tuple[int, ...],
    hidden: int,
    layers: int,
    _widths: tuple[int, ...],
    *,
    cell: str,
    attention: bool,
) -> nn.Module:
    return SequenceAttack(shape[-1], hidden, layers, cell, attention)


def flat_mlp_attack(
    shape: tuple[int, ...], _hidden: int, _layers: int, widths: tuple[int, ...]
) -> nn.Module:
    return FlatMLP(int(np.prod(shape)), widths)


def build_attack(
    architecture: str,
    input_shape: tuple[int, ...],
    hidden_size: int = 50,
    num_layers: int = 1,
    mlp_widths: tuple[int, ...] = (512, 128, 32),
) -> nn.Module:
    """Attack model ``architecture`` (a key of ``ATTACKS``) for inputs of ``input_shape`` (per
    sample: (T, k) or (d,)); ``mlp`` uses ``mlp_widths``, the recurrent ones the others."""
    if architecture not in ATTACKS:
        raise ValueError(f"unknown attack {architecture!r}; choose from {list(ATTACKS)}")
    return ATTACKS[architecture](tuple(input_shape), hidden_size, num_layers, mlp_widths)


def init_attack_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default RNN/Linear init, U(-1/sqrt(fan), 1/sqrt(fan)), from ``generator``."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.RNNBase):
                bound = 1.0 / math.sqrt(module.hidden_size)
                for p in module.parameters():
                    p.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
    return model


# Metrics that are losses (>= 0, tiny for confident members): the ``log_loss_metrics``
# transforms take their logarithm, which spreads the members' values over many units instead of
# crowding them near zero.
LOSS_LIKE_METRICS = ("loss", "entropy", "m_entropy")
# Smallest value before the logarithm: a loss that rounds to exactly 0 stays finite.
LOG_FLOOR = 1e-300


@dataclasses.dataclass(frozen=True)
class InputScaler:
    """Per-feature map on the last axis, fitted on training inputs: features in ``log_mask``
    first become log(max(x, LOG_FLOOR)), then every feature (x - shift) / scale."""

    shift: np.ndarray  # (k,)
    scale: np.ndarray  # (k,)
    log_mask: np.ndarray | None = None  # (k,) bool; None: no logarithm

    def transform(self, sequences: np.ndarray) -> np.ndarray:
        """(N, ..., k) float64 -> (N, ..., k) float64."""
        x = np.asarray(sequences, dtype=np.float64)
        if self.log_mask is not None and np.any(self.log_mask):
            x = np.where(self.log_mask, np.log(np.maximum(x, LOG_FLOOR)), x)
        return (x - self.shift) / self.scale

    def __call__(self, sequences: np.ndarray) -> torch.Tensor:
        """(N, ..., k) float64 -> (N, ..., k) float32 tensor."""
        return torch.from_numpy(self.transform(sequences).astype(np.float32))


def loss_like_mask(features: list[str]) -> np.ndarray:
    """(k,) bool: which of the named features (last axis) are loss-like metrics."""
    return np.array([f in LOSS_LIKE_METRICS for f in features], dtype=bool)


def fit_scaler(
    sequences: np.ndarray, transform: str, log_mask: np.ndarray | None = None
) -> InputScaler:
    """Fit ``transform`` on ``sequences`` (N, ..., k).

    ``none``: identity (the official code feeds raw metrics); ``standardize``: z-score each
    feature over all samples and time steps; ``log_loss_metrics``: the logarithm of the features
    in ``log_mask`` (k,) (the loss-like metrics, see ``loss_like_mask``), others unchanged;
    ``log_loss_metrics_standardize``: that logarithm, then z-score every feature.
    """
    k = sequences.shape[-1]
    if transform not in INPUT_TRANSFORMS:
        raise ValueError(f"unknown input transform {transform!r}; choose from {INPUT_TRANSFORMS}")
    use_log = transform.startswith("log_loss_metrics")
    if use_log and (log_mask is None or not np.any(log_mask)):
        raise ValueError(f"input transform {transform!r} needs at least one loss-like metric")
    mask = np.asarray(log_mask, dtype=bool) if use_log else None
    identity = InputScaler(shift=np.zeros(k), scale=np.ones(k), log_mask=mask)
    if not transform.endswith("standardize"):
        return identity
    flat = identity.transform(sequences).reshape(-1, k)
    return InputScaler(
        shift=flat.mean(axis=0), scale=np.maximum(flat.std(axis=0), 1e-12), log_mask=mask
    )


@torch.no_grad()
def member_log_odds(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Membership score of each input: logit(member) - logit(non-member), float64.

    It ranks samples exactly as P(member) does, but a probability rounds to exactly 1.0 for every
    confident sample, and such ties at the top would hide the low-FPR end of the ROC. The
    decision "member" is log-odds >= 0, i.e. P(member) >= 0.5. x: (N, ...) -> (N,).
    """
    model.eval()
    device = next(model.parameters()).device
    scores = []
    for i in range(0, x.shape[0], batch_size):
        logits = model(x[i : i + batch_size].to(device)).double()  # (B, 2)
        scores.append((logits[:, 1] - logits[:, 0]).cpu())
    return torch.cat(scores).numpy()


def ensemble_log_odds(scores: list[np.ndarray]) -> np.ndarray:
    """Mean membership log-odds of K attack models: K arrays (N,) -> (N,).

    Averaging log-odds (not probabilities) keeps the score unsaturated and weighs each model's
    evidence alike; with K = 1 it is that model's score unchanged.
    """
    if not scores:
        raise ValueError("an ensemble needs at least one member")
    return np.mean(np.stack([np.asarray(s, dtype=np.float64) for s in scores]), axis=0)
