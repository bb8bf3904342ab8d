"""The classifier architectures that ``train.model`` may name: one registry.

Params validation takes its names (and which of them need images) from ``MODELS``;
``seqmia.models.architectures.build_model`` builds the chosen one. The builders are named, not
imported, so validating params.yaml does not pay for torch.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from seqmia.base.lazy import Lazy


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """Architecture options of the models that have them (the MLP's hidden layers, the wide
    ResNet's depth and width); the other models ignore them. No defaults: the values come from
    params.yaml, whose ``train`` section extends this class."""

    mlp_widths: tuple[int, ...]
    mlp_activation: Literal["tanh", "relu"]
    wrn_depth: int
    wrn_width: int


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A classifier to build: a ``MODELS`` name and the options of that architecture;
    ``dp_trainable``: adapted so that DP-SGD can train it (``seqmia.models.build``)."""

    name: str
    options: ModelOptions
    dp_trainable: bool = False


def architecture_of(section: ModelOptions, name: str, dp_trainable: bool = False) -> Architecture:
    """The ``Architecture`` named ``name`` with the ``ModelOptions`` fields of ``section`` (a
    ``ModelOptions`` or a params section extending it), read field by field."""
    fields = {f.name: getattr(section, f.name) for f in dataclasses.fields(ModelOptions)}
    return Architecture(name, ModelOptions(**fields), dp_trainable)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build the model and which samples it takes."""

    # build(input_shape, num_classes, options: ModelOptions | None) -> nn.Module
    build: Lazy
    # True: a network of 2-D convolutions, it needs (C, H, W) images; False: it flattens any
    # sample (the MLP), so feature-vector datasets can use it.
    images_only: bool


def _builder(name: str) -> Lazy:
    return Lazy(f"seqmia.models.architectures:build_{name}")


MODELS: dict[str, ModelSpec] = {
    "small_cnn": ModelSpec(_builder("small_cnn"), True),
    "vgg16": ModelSpec(_builder("vgg16"), True),
    "resnet56": ModelSpec(_builder("resnet56"), True),
    "mobilenetv2": ModelSpec(_builder("mobilenetv2"), True),
    "wrn": ModelSpec(_builder("wrn"), True),
    "mlp": ModelSpec(_builder("mlp"), False),
}
# Models that take any input shape (they flatten it); the others need (C, H, W) images.
ANY_INPUT_MODELS = tuple(name for name, spec in MODELS.items() if not spec.images_only)
IMAGE_MODELS = tuple(name for name, spec in MODELS.items() if spec.images_only)
