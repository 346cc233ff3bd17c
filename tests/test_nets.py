import copy
import math

import pytest
import torch
from torch import nn

from sslzoo.nets import (
    BACKBONES,
    CNN13,
    MeanOnlyBatchNorm,
    ResNet,
    TimmBackbone,
    WideResNet,
    build_backbone,
    wrn_28_2,
    wrn_28_8,
    wrn_37_2,
)
from sslzoo.nets.wide_resnet import ConstantShift


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- WideResNet


@pytest.mark.parametrize(
    "factory, num_classes, expected",
    [
        (wrn_28_2, 10, 1.47e6),  # spec §1.1: 1.5M
        (wrn_28_8, 100, 23.4e6),  # spec §1.1: about 23M (fixmatch#26)
        (wrn_37_2, 10, 5.9e6),  # spec §1.1: about 5.9M (fixmatch#34)
    ],
)
def test_wrn_parameter_count_with_linear_head(factory, num_classes, expected):
    backbone = factory()
    head = nn.Linear(backbone.feature_dim, num_classes)
    assert count_parameters(backbone) + count_parameters(head) == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(
    "factory, channels",
    [(wrn_28_2, (32, 64, 128)), (wrn_28_8, (128, 256, 512)), (wrn_37_2, (32, 64, 128, 256))],
)
def test_wrn_stage_widths(factory, channels):
    net = factory()
    assert net.stage_channels == channels
    assert net.feature_dim == channels[-1]
    assert net.stem.out_channels == 16
    assert [len(stage) for stage in net.stages] == [4] * len(channels)
    assert [stage[-1].conv2.out_channels for stage in net.stages] == list(channels)


def test_wrn_batchnorm_and_activation_follow_fixmatch():
    net = wrn_28_2()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    activations = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(norms) == 2 * 12 + 1 and len(activations) == len(norms)
    assert all(m.momentum == 0.001 and m.eps == 0.001 for m in norms)
    assert all(m.negative_slope == 0.1 for m in activations)
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d))
    assert all(m.bias is not None for m in wrn_28_2(conv_bias=True).modules() if isinstance(m, nn.Conv2d))


def test_wrn_conv_init_is_kaiming_fan_out():
    torch.manual_seed(0)
    weight = wrn_28_2().stages[2][1].conv2.weight
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 128)), rel=0.02)


def test_wrn_strides_and_forward_shapes():
    net = wrn_28_2()
    assert [stage[0].conv1.stride for stage in net.stages] == [(1, 1), (2, 2), (2, 2)]
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 128)
    assert wrn_37_2()(torch.randn(2, 3, 96, 96)).shape == (2, 256)
    assert wrn_37_2(first_stride=2).stages[0][0].conv1.stride == (2, 2)


def test_wrn_shortcut_reads_activated_input_only_in_first_unit():
    net = wrn_28_2().eval()
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = inputs[0]
        return hook

    first, transition = net.stages[0][0], net.stages[1][0]
    first.preact.register_forward_hook(lambda m, i, o: seen.update(first_activated=o))
    first.shortcut.register_forward_hook(record("first_shortcut"))
    transition.register_forward_hook(lambda m, i, o: seen.update(transition_input=i[0]))
    transition.shortcut.register_forward_hook(record("transition_shortcut"))
    net(torch.randn(2, 3, 16, 16))
    assert torch.equal(seen["first_shortcut"], seen["first_activated"])
    assert torch.equal(seen["transition_shortcut"], seen["transition_input"])


def test_wrn_paper_000_variant():
    net = wrn_28_2(activation="mish", bn_shift=0.1, preactivate_transitions=False)
    assert not any(isinstance(m, nn.LeakyReLU) for m in net.modules())
    assert any(isinstance(m, nn.Mish) for m in net.modules())
    assert all(m.shift == 0.1 for m in net.modules() if isinstance(m, ConstantShift))
    assert isinstance(net.stages[1][0].preact, nn.Identity)
    assert not isinstance(net.stages[0][0].preact, nn.Identity)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 128)


def test_wrn_rejects_bad_depth_and_activation():
    with pytest.raises(ValueError, match="depth"):
        WideResNet(depth=30)
    with pytest.raises(ValueError, match="activation"):
        WideResNet(activation="relu")
    with pytest.raises(ValueError, match="stages"):
        WideResNet(depth=28, stages=2)


@pytest.mark.parametrize(
    "depth, stages, units",
    [(28, None, [4, 4, 4]), (37, None, [4, 4, 4, 4]), (10, None, [1, 1, 1]), (19, None, [4, 4]), (19, 2, [4, 4])],
)
def test_wrn_depth_gives_stages_and_units(depth, stages, units):
    net = WideResNet(depth=depth, widen_factor=2, stages=stages)
    assert [len(stage) for stage in net.stages] == units
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth


# ---------------------------------------------------------------- mean-only BN


def test_mean_only_batch_norm_in_train_mode_subtracts_batch_mean_only():
    norm = MeanOnlyBatchNorm(3).train()
    x = torch.randn(4, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 7
    y = norm(x)
    batch_mean = x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(y, x - batch_mean.view(1, 3, 1, 1))
    torch.testing.assert_close(y.std(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)))
    torch.testing.assert_close(norm.running_mean, 0.001 * batch_mean)
    norm(x)
    torch.testing.assert_close(norm.running_mean, 0.001 * batch_mean + 0.999 * 0.001 * batch_mean)


def test_mean_only_batch_norm_in_eval_mode_uses_running_mean_and_bias():
    norm = MeanOnlyBatchNorm(2)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([1.0, -2.0]))
        norm.bias.copy_(torch.tensor([0.5, 0.0]))
    norm.eval()
    x = torch.randn(6, 2)
    torch.testing.assert_close(norm(x), x - torch.tensor([0.5, -2.0]))
    torch.testing.assert_close(norm.running_mean, torch.tensor([1.0, -2.0]))


def test_mean_only_batch_norm_trains_its_bias():
    norm = MeanOnlyBatchNorm(2)
    norm(torch.randn(4, 2, 3, 3)).pow(2).add(1).sum().backward()
    assert norm.bias.grad is not None and norm.bias.grad.abs().sum() > 0


# ---------------------------------------------------------------- CNN-13


def test_cnn13_forward_and_layers():
    net = CNN13()
    assert net.feature_dim == 128
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 128)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128] * 3 + [256] * 3 + [512, 256, 128]
    assert [c.kernel_size for c in convs][-3:] == [(3, 3), (1, 1), (1, 1)] and convs[-3].padding == (0, 0)
    norms = [m for m in net.modules() if isinstance(m, MeanOnlyBatchNorm)]
    assert len(norms) == 9 and all(n.momentum == 0.001 for n in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert all(m.negative_slope == 0.1 for m in net.modules() if isinstance(m, nn.LeakyReLU))
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_cnn13_convs_are_weight_normed_with_unit_gain():
    conv = CNN13().layers[0].conv
    assert hasattr(conv, "parametrizations") and hasattr(conv.parametrizations, "weight")
    torch.testing.assert_close(conv.weight.flatten(1).norm(dim=1), torch.ones(128))


def test_cnn13_batch_norm_variant():
    net = CNN13(norm="batch")
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 9 and all(n.momentum == 0.001 for n in norms)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 128)
    with pytest.raises(ValueError, match="norm"):
        CNN13(norm="layer")


def test_cnn13_data_dependent_init_normalises_first_layer():
    torch.manual_seed(0)
    net = CNN13()
    x = torch.randn(8, 3, 32, 32)
    net.data_dependent_init_(x)
    first = net.layers[0]
    with torch.no_grad():
        pre_activation = first.conv(x)
    std = pre_activation.std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(std, torch.ones(128), rtol=1e-3, atol=1e-3)
    mean = pre_activation.mean(dim=(0, 2, 3))
    torch.testing.assert_close(first.norm.bias, -mean, rtol=1e-3, atol=1e-4)
    assert all(n.running_mean.abs().sum() == 0 for n in net.modules() if isinstance(n, MeanOnlyBatchNorm))


def test_cnn13_state_survives_copy_and_checkpoint():
    net = CNN13().eval()
    x = torch.randn(2, 3, 32, 32)
    restored = CNN13().eval()
    restored.load_state_dict(copy.deepcopy(net).state_dict())
    torch.testing.assert_close(restored(x), net(x))


# ---------------------------------------------------------------- ResNet


def test_resnet18_cifar_stem():
    net = build_backbone("resnet18", cifar_stem=True)
    assert isinstance(net, ResNet) and net.feature_dim == 512
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity) and isinstance(net.fc, nn.Identity)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_resnet18_stl_stem_ends_on_7x7_map():
    net = build_backbone("resnet18", stl_stem=True)
    sizes = []
    net.layer4.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-2:]))
    assert net(torch.randn(2, 3, 96, 96)).shape == (2, 512)
    assert sizes == [(7, 7)]
    with pytest.raises(ValueError, match="at most one"):
        ResNet(cifar_stem=True, stl_stem=True)


def test_resnet50_feature_dim_and_torchvision_keys():
    net = build_backbone("resnet50")
    assert net.feature_dim == 2048
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 2048)
    assert "layer4.2.conv3.weight" in net.state_dict() and "fc.weight" not in net.state_dict()


# ---------------------------------------------------------------- timm


def test_timm_resnet18():
    net = build_backbone("timm:resnet18")
    assert net.feature_dim == 512
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 512)


def test_timm_tiny_vit_with_small_images():
    net = build_backbone("timm:vit_tiny_patch16_224", img_size=32, patch_size=8)
    assert net.feature_dim == 192
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 192)


def test_timm_loads_a_local_checkpoint(tmp_path):
    source = TimmBackbone("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(source.model.state_dict(), path)
    loaded = build_backbone("timm:resnet18", checkpoint_path=path)
    for name, tensor in source.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        TimmBackbone("resnet18", checkpoint_path=tmp_path / "missing.pth")


def test_timm_unreachable_hub_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    import timm

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match="unreachable.*checkpoint_path"):
        TimmBackbone("resnet18", pretrained=True)


# ---------------------------------------------------------------- registry


def test_build_backbone_rejects_unknown_names():
    with pytest.raises(ValueError) as error:
        build_backbone("wrn_28_10")
    message = str(error.value)
    assert all(name in message for name in BACKBONES) and "timm:" in message
    with pytest.raises(ValueError, match="timm"):
        build_backbone("timm:")


def test_build_backbone_passes_keyword_arguments():
    net = build_backbone("wrn_28_2", activation="mish")
    assert isinstance(net, WideResNet) and any(isinstance(m, nn.Mish) for m in net.modules())
    assert isinstance(build_backbone("cnn13", norm="batch"), CNN13)
    assert {"wrn_28_2", "wrn_28_8", "wrn_37_2", "wide_resnet", "cnn13", "resnet18", "resnet50"} <= set(BACKBONES)
