"""The model registry: shapes, parameter counts, seeded initialisation, seeded dropout."""

from __future__ import annotations

import pytest
import torch

from seqmia.models import SeededDropout, build_model, count_parameters, set_generator


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is much faster, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
