"""Model registry: architectures selectable by name in ``train.model``.

Convolutional models take ``(B, C, H, W)`` images; the MLP takes ``(B, D)`` feature vectors (or
anything, flattened). Every model returns ``(B, num_classes)`` logits. Weights are initialised from
an explicit ``torch.Generator`` (He-normal convolutions, as the official code does), so two models
built concurrently in one process stay reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqmia.base.errors import UserError
from seqmia.models.registry import ANY_INPUT_MODELS, MODELS, ModelOptions


class ModelInputError(UserError, ValueError):
    """The chosen architecture cannot take the dataset's samples."""


class HiddenLinear(nn.Linear):
    """A hidden layer of an MLP; ``init_weights`` gives it a fan-in scaled initialisation for its
    ``activation`` instead of the N(0, 0.01) of output layers, so deep tanh stacks do not start
    with vanishing activations (N(0, 0.01) shrinks a 446-feature input about 5x per layer)."""

    def __init__(self, in_features: int, out_features: int, activation: str) -> None:
        super().__init__(in_features, out_features)
        self.activation = activation


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
    """Initialise in place: He-normal convolutions (fan-out, ReLU gain; depthwise ones too),
    N(0, 0.01) output linear layers, Glorot-uniform (tanh gain) or He-normal (ReLU) hidden MLP
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
            elif isinstance(module, HiddenLinear):
                if module.activation == "tanh":
                    gain = nn.init.calculate_gain("tanh")
                    nn.init.xavier_uniform_(module.weight, gain=gain, generator=generator)
                else:
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
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


def _flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
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
            *_conv_bn_relu(c, 32),
            *_conv_bn_relu(32, 32),
            nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64),
            *_conv_bn_relu(64, 64),
            nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128),
            nn.MaxPool2d(2),
        )
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
            nn.Linear(flat, 512),
            nn.ReLU(inplace=True),
            SeededDropout(0.5),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            SeededDropout(0.5),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, classes)


class MLP(nn.Module):
    """Fully connected network for tabular and text features: input -> widths (Tanh or ReLU) ->
    classes. The default 1024-512-256-128 with Tanh is the Purchase100/Texas100 classifier of
    Nasr et al. (CCS 2018) and the membership-inference papers after it; no batch-norm, no
    dropout. Image input is flattened."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, options: ModelOptions
    ) -> None:
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[options.mlp_activation]
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in options.mlp_widths:
            layers += [HiddenLinear(width, hidden, options.mlp_activation), act()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, classes)


class _ResNetBlock(nn.Module):
    """CIFAR ResNet basic block with the parameter-free shortcut ("option A" of He et al. 2016):
    stride-2 subsampling and zero channels where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:  # zero channels appended: (B, c_in, H, W) -> (B, c_out, H, W)
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class ResNetCifar(nn.Module):
    """CIFAR ResNet of He et al. (2016, section 4.2): depth 6n+2, stages of 16, 32, 64 channels.
    ResNet-56 (n = 9) has 853,018 parameters on 10 classes."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, depth: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_ResNetBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))  # (B, 64, H/4, W/4)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))  # (B, classes)


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project (linear bottleneck). As in the
    CIFAR version of the membership-inference literature (pytorch-cifar), stride-1 blocks add a
    shortcut, projected by 1x1 conv + BN where the channel count changes."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = expansion * c_in
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.stride = stride
        self.shortcut: nn.Module = nn.Identity()
        if stride == 1 and c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2Cifar(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) for 32x32 input: stride-1 stem and second stage, so the
    feature map is 4x4 before pooling; 2,296,922 parameters on 10 classes."""

    # (expansion, out channels, blocks, stride of the first block)
    CONFIG = (
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = 32
        for expansion, c_out, count, stride in self.CONFIG:
            for i in range(count):
                blocks.append(_InvertedResidual(c_in, c_out, expansion, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU()
        )
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.blocks(self.stem(x)))  # (B, 1280, H/8, W/8)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))  # (B, classes)


class _WideBlock(nn.Module):
    """Pre-activation wide basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, 1x1 conv shortcut where
    the shape changes (Zagoruyko & Komodakis 2016, no dropout)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        # The projection reads the pre-activated input, as in the authors' code.
        return out + (x if self.shortcut is None else self.shortcut(pre))


def wrn_blocks_per_group(depth: int) -> int:
    """Blocks per group of WRN-``depth``: depth 6n+4 (the paper counts the three 1x1 shortcut
    convolutions, WRN-16, -22, -28, -40) or 6n+2 (ResNet convention, e.g. WRN-32)."""
    if (depth - 4) % 6 == 0:
        return (depth - 4) // 6
    if (depth - 2) % 6 == 0:
        return (depth - 2) // 6
    raise ValueError(f"WideResNet depth must be 6n+4 or 6n+2, got {depth}")


class WideResNet(nn.Module):
    """WRN-depth-width: stem conv 16, three groups of 16k, 32k, 64k channels (strides 1, 2, 2),
    BN-ReLU, global average pool, linear. WRN-16-4 has 2,748,890 parameters on 10 classes."""

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, depth: int, width: int
    ) -> None:
        super().__init__()
        n = wrn_blocks_per_group(depth)
        self.stem = nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = 16
        for c_out, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
            for i in range(n):
                blocks.append(_WideBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.stem(x))))  # (B, 64k, H/4, W/4)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))  # (B, classes)


def _options(options: ModelOptions | None, name: str) -> ModelOptions:
    if options is None:
        raise ValueError(f"model {name!r} needs ModelOptions (train.mlp_*, train.wrn_*)")
    return options


# The builders that seqmia.models.registry.MODELS names: (input_shape, num_classes, options).
def build_small_cnn(shape: tuple[int, ...], classes: int, _: ModelOptions | None) -> nn.Module:
    return SmallCNN(shape, classes)


def build_vgg16(shape: tuple[int, ...], classes: int, _: ModelOptions | None) -> nn.Module:
    return VGG16(shape, classes)


def build_resnet56(shape: tuple[int, ...], classes: int, _: ModelOptions | None) -> nn.Module:
    return ResNetCifar(shape, classes, depth=56)


def build_mobilenetv2(shape: tuple[int, ...], classes: int, _: ModelOptions | None) -> nn.Module:
    return MobileNetV2Cifar(shape, classes)


def build_wrn(shape: tuple[int, ...], classes: int, options: ModelOptions | None) -> nn.Module:
    wrn = _options(options, "wrn")
    return WideResNet(shape, classes, wrn.wrn_depth, wrn.wrn_width)


def build_mlp(shape: tuple[int, ...], classes: int, options: ModelOptions | None) -> nn.Module:
    return MLP(shape, classes, _options(options, "mlp"))


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    generator: torch.Generator,
    options: ModelOptions | None = None,
) -> nn.Module:
    """Registry model ``name`` for one sample of ``input_shape`` ((C, H, W) images, (D,)
    features), initialised from ``generator``. ``options`` (``train.mlp_*``, ``train.wrn_*``)
    is needed by the models that have options. Raises ``ModelInputError`` if the architecture
    cannot take that shape (a CNN on feature vectors)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if MODELS[name].images_only and len(input_shape) != 3:
        raise ModelInputError(
            f"model {name!r} is a convolutional network for (C, H, W) images, but the prepared "
            f"samples have shape {tuple(input_shape)} (feature vectors); use train.model: "
            f"{' or '.join(ANY_INPUT_MODELS)}"
        )
    model = MODELS[name].build(tuple(input_shape), num_classes, options)
    init_weights(model, generator)
    set_generator(model, generator)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
