"""The fast forms of the networks compute what the plain forms compute: in-place activations,
shifts and residual sums give the same outputs and gradients bit for bit, and channels-last
weights the same to float rounding, in training mode (batch statistics) and in eval mode."""
from __future__ import annotations

import copy

import pytest
import torch

from sslzoo.nets.cnn13 import CNN13
from sslzoo.nets.wide_resnet import WideResNet


def outputs_and_grads(net: torch.nn.Module, x: torch.Tensor):
    net.zero_grad(set_to_none=True)
    out = net(x)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    buffers = [b.clone() for b in net.buffers()]
    return out.detach(), grads, buffers


def assert_same(a, b, atol=0.0):
    for x, y in zip([a[0], *a[1], *a[2]], [b[0], *b[1], *b[2]], strict=True):
        if atol:
            torch.testing.assert_close(x, y, atol=atol, rtol=atol)
        else:
            assert torch.equal(x, y)


WRN_VARIANTS = {
    "fixmatch": dict(depth=10, widen_factor=1),
    "mish_psbn": dict(depth=10, widen_factor=1, activation="mish", bn_shift=0.1, preactivate_transitions=False, bn_eps=1e-5),
}


@pytest.mark.parametrize("variant", list(WRN_VARIANTS))
@pytest.mark.parametrize("train", [True, False])
def test_inplace_wide_resnet_equals_out_of_place(variant, train):
    torch.manual_seed(0)
    fast = WideResNet(**WRN_VARIANTS[variant], inplace=True)
    plain = WideResNet(**WRN_VARIANTS[variant], inplace=False)
    plain.load_state_dict(fast.state_dict())
    fast.train(train), plain.train(train)
    x = torch.randn(6, 3, 16, 16)
    assert_same(outputs_and_grads(fast, x), outputs_and_grads(plain, x))


def test_inplace_cnn13_equals_out_of_place():
    torch.manual_seed(0)
    fast = CNN13(norm="batch", dropout=0.0)
    plain = copy.deepcopy(fast)
    for module in plain.modules():
        if isinstance(module, torch.nn.LeakyReLU):
            module.inplace = False
    assert any(getattr(m, "inplace", False) for m in fast.modules())
    x = torch.randn(4, 3, 32, 32)
    assert_same(outputs_and_grads(fast, x), outputs_and_grads(plain, x))


@pytest.mark.parametrize("train", [True, False])
def test_channels_last_wide_resnet_equals_contiguous(train):
    torch.manual_seed(0)
    plain = WideResNet(depth=10, widen_factor=1).train(train)
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    assert fast.stem.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(6, 3, 16, 16)
    assert_same(outputs_and_grads(fast, x), outputs_and_grads(plain, x), atol=1e-5)


def test_method_puts_its_networks_in_channels_last_at_setup():
    from types import SimpleNamespace

    from sslzoo.methods import FixMatch

    method = FixMatch(num_classes=10, backbone="wide_resnet", backbone_options={"depth": 10, "widen_factor": 1})
    weight = method.network.backbone.stem.weight
    method._trainer = SimpleNamespace(datamodule=None)
    method.setup("fit")
    assert method.network.backbone.stem.weight is weight  # the same Parameter: optimizers and EMA keep their references
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert method.ema.module.backbone.stem.weight.is_contiguous(memory_format=torch.channels_last)
    off = FixMatch(num_classes=10, backbone="wide_resnet", backbone_options={"depth": 10, "widen_factor": 1}, channels_last=False)
    off._trainer = SimpleNamespace(datamodule=None)
    off.setup("fit")
    assert off.network.backbone.stem.weight.is_contiguous()
