"""ReLU activity of an attack model: dead units and inputs that silence a layer."""

import numpy as np
import torch
from torch import nn

from seqmia.attacks.networks import FlatMLP
from seqmia.audit.activity import relu_activity


def hand_built_mlp() -> nn.Module:
    """2 inputs -> ReLU(3 units) -> ReLU(2 units) -> 2 logits, with chosen weights."""
    model = FlatMLP(2, (3, 2))
    first, second, head = (m for m in model.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        first.bias.copy_(torch.tensor([0.0, 0.0, -10.0]))  # unit 3 never fires on these inputs
        second.weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]))
        second.bias.zero_()
        head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        head.bias.copy_(torch.tensor([0.0, 0.5]))
    return model


def test_counts_dead_units_and_silent_inputs():
    x = torch.tensor([[1.0, 2.0], [-1.0, -3.0], [-2.0, -1.0], [3.0, -5.0]])
    first, second = relu_activity(hand_built_mlp(), x)
    assert (first.width, first.dead_units) == (3, 1)
    np.testing.assert_array_equal(first.silent_inputs, [False, True, True, False])
    # Second layer: unit 1 = relu(relu(a) + relu(b)), unit 2 = relu(-relu(a)) is always 0.
    assert (second.width, second.dead_units) == (2, 1)
    np.testing.assert_array_equal(second.silent_inputs, [False, True, True, False])


def test_silent_inputs_tie_at_the_heads_bias():
    model = hand_built_mlp()
    x = torch.tensor([[1.0, 2.0], [-1.0, -3.0], [-2.0, -1.0]])
    logits = model(x)
    silent = relu_activity(model, x)[-1].silent_inputs
    log_odds = (logits[:, 1] - logits[:, 0]).detach().numpy()
    assert silent.tolist() == [False, True, True]
    assert log_odds[1] == log_odds[2] == 0.5  # the head's bias difference
    assert log_odds[0] != 0.5


def test_hooks_are_removed():
    model = hand_built_mlp()
    relu_activity(model, torch.zeros(1, 2))
    assert all(not m._forward_hooks for m in model.modules())
