"""Which units of a model's ReLU layers fire on a set of inputs: a diagnostic of attack models
whose scores tie (inputs that silence a whole layer all get the same output)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class ReluActivity:
    """One ReLU layer of a model over a set of N inputs."""

    layer: int  # index of the ReLU in ``model.modules()`` order
    width: int  # units
    dead_units: int  # units that are 0 for every input
    silent_inputs: np.ndarray  # (N,) bool: inputs for which every unit of the layer is 0


@torch.no_grad()
def relu_activity(model: nn.Module, x: torch.Tensor) -> list[ReluActivity]:
    """The activity of every ``nn.ReLU`` of ``model`` on inputs ``x`` (N, ...), in order.

    Every input that silences a layer gets the same output as every other such input, since the
    layers after it see only zeros: such inputs tie. Runs the model once, in eval mode.
    """
    outputs: dict[int, torch.Tensor] = {}
    relus = [(i, m) for i, m in enumerate(model.modules()) if isinstance(m, nn.ReLU)]
    hooks = [
        m.register_forward_hook(lambda _m, _in, out, i=i: outputs.__setitem__(i, out))
        for i, m in relus
    ]
    try:
        model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    activity = []
    for i, _ in relus:
        off = (outputs[i] == 0).reshape(x.shape[0], -1)  # (N, width)
        activity.append(ReluActivity(i, off.shape[1], int(off.all(0).sum()), off.all(1).numpy()))
    return activity
