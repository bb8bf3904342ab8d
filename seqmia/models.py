"""Model registry: architectures selectable by name in ``train.model``.

Every model takes ``(B, C, H, W)`` float input and returns ``(B, num_classes)`` logits. Weights are
initialised from an explicit ``torch.Generator`` (He-normal, as the official code does), so two
models built concurrently in one process stay reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class SeededDropout(nn.Module):
    """Dropout whose mask comes from ``self.generator`` instead of the global RNG.

    The global RNG is shared by every thread of a process; concurrent target and shadow training
    would interleave its draws and lose reproducibility. ``set_generator`` assigns the stream.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


def set_generator(model: nn.Module, generator: torch.Generator) -> None:
    """Make every ``SeededDropout`` in ``model`` draw from ``generator``."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator


def init_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Initialise in place: He-normal convolutions (fan-out, ReLU gain), N(0, 0.01) linear
    layers, zero biases, unit batch-norm scales and fresh running statistics.

    Small linear weights keep the first logits near zero; He-normal on the classifier too made
    the small CNN's first epochs diverge at the official learning rate of 0.1 (loss 6 after one
    epoch, a target stuck at 60% training accuracy after 40).
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.reset_running_stats()
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    return model


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _flat_size(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Features per sample after ``features``; eval mode so batch-norm statistics stay fresh."""
    was_training = features.training
    features.eval()
    with torch.no_grad():
        size = int(features(torch.zeros(1, *input_shape)).numel())
    features.train(was_training)
    return size


class SmallCNN(nn.Module):
    """CPU-sized CNN: conv32-conv32-pool-conv64-conv64-pool-conv128-pool, FC 128, FC classes.

    About 0.4M parameters on 32x32 RGB input.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(
            *_conv_bn_relu(c, 32), *_conv_bn_relu(32, 32), nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64), *_conv_bn_relu(64, 64), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128), nn.MaxPool2d(2),
        )  # fmt: skip
        flat = _flat_size(self.features, input_shape)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, classes)


class VGG16(nn.Module):
    """The official SeqMIA VGG-16 variant: 13 conv-BN-ReLU layers, 2x2 average pooling after
    conv 2, 4, 7, 10 and 13, head 512 -> ReLU -> Dropout(0.5) -> 512 -> ReLU -> Dropout(0.5) ->
    classes."""

    # Channels per conv layer; "P" is a 2x2 average pool.
    CONFIG = "64 64 P 128 128 P 256 256 256 P 512 512 512 P 512 512 512 P".split()

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = input_shape[0]
        for item in self.CONFIG:
            if item == "P":
                layers.append(nn.AvgPool2d(2))
            else:
                layers += _conv_bn_relu(c, int(item))
                c = int(item)
        self.features = nn.Sequential(*layers)
        flat = _flat_size(self.features, input_shape)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 512), nn.ReLU(inplace=True), SeededDropout(0.5),
            nn.Linear(512, 512), nn.ReLU(inplace=True), SeededDropout(0.5),
            nn.Linear(512, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, classes)


ModelFactory = Callable[[tuple[int, int, int], int], nn.Module]

MODEL_REGISTRY: dict[str, ModelFactory] = {
    "small_cnn": SmallCNN,
    "vgg16": VGG16,
}


def build_model(
    name: str, input_shape: tuple[int, int, int], num_classes: int, generator: torch.Generator
) -> nn.Module:
    """Registry model ``name`` for ``input_shape`` (C, H, W), initialised from ``generator``."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODEL_REGISTRY)}")
    model = MODEL_REGISTRY[name](input_shape, num_classes)
    init_weights(model, generator)
    set_generator(model, generator)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
