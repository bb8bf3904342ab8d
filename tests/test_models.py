"""The model registry: shapes, parameter counts, seeded initialisation, seeded dropout."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seqmia.base.errors import UserError
from seqmia.models.architectures import (
    ModelInputError,
    ModelOptions,
    SeededDropout,
    build_model,
    count_parameters,
    set_generator,
    wrn_blocks_per_group,
)

# The architecture options of params.yaml's train section.
OPTIONS = ModelOptions(
    mlp_widths=(1024, 512, 256, 128), mlp_activation="tanh", wrn_depth=16, wrn_width=4
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_small_cnn_output_and_size():
    model = build_model("small_cnn", (3, 32, 32), 10, _gen()).eval()
    with torch.no_grad():
        out = model(torch.randn(4, 3, 32, 32, generator=_gen(1)))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()
    assert 380_000 <= count_parameters(model) <= 420_000


def test_small_cnn_accepts_one_channel_input():
    model = build_model("small_cnn", (1, 28, 28), 7, _gen()).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 28, 28, generator=_gen(1))).shape == (3, 7)


def vgg16_parameter_count(in_channels: int, num_classes: int) -> int:
    """13 conv(3x3, bias) + BN(scale, shift) layers, then 512 -> 512 -> 512 -> classes."""
    channels = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, c_in = 0, in_channels
    for c_out in channels:
        total += 9 * c_in * c_out + c_out + 2 * c_out
        c_in = c_out
    for f_in, f_out in [(512, 512), (512, 512), (512, num_classes)]:
        total += f_in * f_out + f_out
    return total


def test_vgg16_output_and_size():
    model = build_model("vgg16", (3, 32, 32), 10, _gen()).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32, generator=_gen(1)))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    expected = vgg16_parameter_count(3, 10)
    assert expected == 15_253_578  # worked out by hand from the layer list
    assert count_parameters(model) == expected
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13
    assert all(c.kernel_size == (3, 3) for c in convs)


def test_unknown_model_raises():
    with pytest.raises(ValueError, match="resnet999"):
        build_model("resnet999", (3, 32, 32), 10, _gen())


def test_same_seed_same_parameters():
    a = build_model("small_cnn", (3, 16, 16), 10, _gen(5))
    b = build_model("small_cnn", (3, 16, 16), 10, _gen(5))
    c = build_model("small_cnn", (3, 16, 16), 10, _gen(6))
    pa, pb, pc = dict(a.named_parameters()), dict(b.named_parameters()), dict(c.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


def test_same_seed_same_state_dict():
    # Buffers too: batch-norm running statistics decide eval-mode outputs.
    a = build_model("small_cnn", (3, 16, 16), 10, _gen(5)).state_dict()
    b = build_model("small_cnn", (3, 16, 16), 10, _gen(5)).state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == []


def test_fresh_model_has_pristine_batchnorm_statistics():
    model = build_model("small_cnn", (3, 16, 16), 10, _gen(0))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean))
            assert torch.equal(module.running_var, torch.ones_like(module.running_var))
            assert int(module.num_batches_tracked) == 0


def test_init_zero_biases_unit_bn():
    model = build_model("small_cnn", (3, 16, 16), 10, _gen(0))
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))


def test_seeded_dropout_mask_follows_generator():
    drop = SeededDropout(0.5)
    x = torch.ones(200)
    drop.generator = _gen(3)
    a = drop(x)
    drop.generator = _gen(3)
    b = drop(x)
    drop.generator = _gen(4)
    c = drop(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0.0, 2.0}  # dropped or scaled by 1 / (1 - p)


def test_seeded_dropout_is_identity_in_eval_mode():
    drop = SeededDropout(0.5).eval()
    drop.generator = _gen(0)
    x = torch.randn(50, generator=_gen(1))
    assert torch.equal(drop(x), x)


def test_set_generator_reaches_every_dropout():
    model = build_model("vgg16", (3, 32, 32), 10, _gen(0))
    g = _gen(9)
    set_generator(model, g)
    drops = [m for m in model.modules() if isinstance(m, SeededDropout)]
    assert len(drops) == 2
    assert all(d.generator is g for d in drops)


# --- the paper's other architectures: output shape and parameter count against the reference --


def _bn(c: int) -> int:
    return 2 * c


def resnet_cifar_parameter_count(depth: int, in_channels: int, num_classes: int) -> int:
    """He et al. (2016) CIFAR ResNet, option-A shortcuts: stem conv16+BN, 3 stages of (depth-2)/6
    basic blocks (two bias-free 3x3 convs + BN each) of 16/32/64 channels, linear 64 -> classes."""
    n = (depth - 2) // 6
    total, c_in = 9 * in_channels * 16 + _bn(16), 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 9 * c_in * c + _bn(c) + 9 * c * c + _bn(c)
            c_in = c
    return total + 64 * num_classes + num_classes


def mobilenetv2_parameter_count(in_channels: int, num_classes: int) -> int:
    """CIFAR MobileNetV2 (pytorch-cifar): stem 3x3 conv32, inverted residuals of the paper's
    table 2 (stride-1 shortcuts projected by 1x1 conv + BN where channels change), 1x1 conv 1280,
    linear 1280 -> classes."""
    config = [
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    total, c_in = 9 * in_channels * 32 + _bn(32), 32
    for t, c, n, s in config:
        for i in range(n):
            hidden = t * c_in
            total += c_in * hidden + _bn(hidden) + 9 * hidden + _bn(hidden) + hidden * c + _bn(c)
            if (s if i == 0 else 1) == 1 and c_in != c:
                total += c_in * c + _bn(c)
            c_in = c
    return total + 320 * 1280 + _bn(1280) + 1280 * num_classes + num_classes


def wrn_parameter_count(depth: int, k: int, in_channels: int, num_classes: int) -> int:
    """Zagoruyko & Komodakis WRN-d-k: stem conv16, 3 groups of (d-4)/6 pre-activation blocks
    (BN, 3x3 conv, BN, 3x3 conv; 1x1 conv shortcut where the shape changes), BN, linear."""
    n = (depth - 4) // 6 if (depth - 4) % 6 == 0 else (depth - 2) // 6  # 6n+4, else 6n+2
    total, c_in = 9 * in_channels * 16, 16
    for c in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += _bn(c_in) + 9 * c_in * c + _bn(c) + 9 * c * c
            total += c_in * c if c_in != c else 0
            c_in = c
    return total + _bn(c_in) + c_in * num_classes + num_classes


def mlp_parameter_count(d: int, widths: tuple[int, ...], num_classes: int) -> int:
    sizes = [d, *widths, num_classes]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def _forward(model: torch.nn.Module, shape: tuple[int, ...], batch: int = 2) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.randn(batch, *shape, generator=_gen(1)))


def test_resnet56_output_and_size():
    model = build_model("resnet56", (3, 32, 32), 10, _gen())
    out = _forward(model, (3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert resnet_cifar_parameter_count(56, 3, 10) == 853_018  # the "0.85M" of He et al.
    assert count_parameters(model) == 853_018
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 55  # + the linear layer = 56 weighted layers


def test_mobilenetv2_output_and_size():
    model = build_model("mobilenetv2", (3, 32, 32), 10, _gen())
    assert _forward(model, (3, 32, 32)).shape == (2, 10)
    assert mobilenetv2_parameter_count(3, 10) == 2_296_922
    assert count_parameters(model) == 2_296_922
    assert count_parameters(build_model("mobilenetv2", (3, 32, 32), 100, _gen())) == (
        mobilenetv2_parameter_count(3, 100)
    )


@pytest.mark.parametrize(("depth", "k", "expected"), [(16, 4, 2_748_890), (32, 4, None)])
def test_wrn_output_and_size(depth, k, expected):
    options = dataclasses.replace(OPTIONS, wrn_depth=depth, wrn_width=k)
    model = build_model("wrn", (3, 32, 32), 10, _gen(), options)
    assert _forward(model, (3, 32, 32)).shape == (2, 10)
    if expected is not None:  # WRN-16-4: 2.7M in Zagoruyko & Komodakis' table
        assert wrn_parameter_count(depth, k, 3, 10) == expected
    assert count_parameters(model) == wrn_parameter_count(depth, k, 3, 10)


def test_wrn_28_10_size_matches_paper():
    # 36.5M in Zagoruyko & Komodakis' table; counted without running it.
    options = dataclasses.replace(OPTIONS, wrn_depth=28, wrn_width=10)
    model = build_model("wrn", (3, 32, 32), 10, _gen(), options)
    assert count_parameters(model) == wrn_parameter_count(28, 10, 3, 10) == 36_479_194


def test_wrn_depth_6n_plus_2_counts_blocks():
    assert wrn_blocks_per_group(32) == 5 and wrn_blocks_per_group(16) == 2
    with pytest.raises(ValueError):
        wrn_blocks_per_group(18 + 1)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_output_and_size(activation):
    options = dataclasses.replace(OPTIONS, mlp_activation=activation)
    model = build_model("mlp", (446,), 30, _gen(), options)
    out = _forward(model, (446,), batch=3)
    assert out.shape == (3, 30) and torch.isfinite(out).all()
    assert count_parameters(model) == mlp_parameter_count(446, (1024, 512, 256, 128), 30)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    act = torch.nn.Tanh if activation == "tanh" else torch.nn.ReLU
    assert sum(isinstance(m, act) for m in model.modules()) == 4


def test_mlp_widths_from_options_and_image_input_flattened():
    options = dataclasses.replace(OPTIONS, mlp_widths=(32, 16))
    model = build_model("mlp", (1, 8, 8), 10, _gen(), options)
    assert _forward(model, (1, 8, 8)).shape == (2, 10)
    assert count_parameters(model) == mlp_parameter_count(64, (32, 16), 10)


def test_mlp_hidden_layers_keep_signal_at_init():
    # Tanh hidden layers with Glorot init: the last hidden activations neither vanish nor saturate.
    model = build_model("mlp", (446,), 30, _gen(), OPTIONS)
    x = (torch.rand(256, 446, generator=_gen(2)) < 0.3).float()
    hidden = model.net[:-1](x)
    assert 0.05 < float(hidden.detach().std()) < 0.95


@pytest.mark.parametrize("name", ["small_cnn", "vgg16", "resnet56", "mobilenetv2", "wrn"])
def test_cnn_refuses_feature_vectors(name):
    with pytest.raises(ModelInputError) as info:
        build_model(name, (446,), 30, _gen(), OPTIONS)
    assert isinstance(info.value, UserError)
    assert "mlp" in str(info.value) and "(446,)" in str(info.value)


@pytest.mark.parametrize("name", ["resnet56", "mobilenetv2", "wrn", "mlp"])
def test_new_models_same_seed_same_state_dict(name):
    a = build_model(name, (1, 28, 28), 10, _gen(5), OPTIONS).state_dict()
    b = build_model(name, (1, 28, 28), 10, _gen(5), OPTIONS).state_dict()
    c = build_model(name, (1, 28, 28), 10, _gen(6), OPTIONS).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", ["resnet56", "mobilenetv2", "wrn"])
def test_grey_input_through_image_models(name):
    model = build_model(name, (1, 28, 28), 10, _gen(), OPTIONS)
    assert _forward(model, (1, 28, 28)).shape == (2, 10)
