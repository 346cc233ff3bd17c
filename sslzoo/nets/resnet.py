"""torchvision ResNet-18/50 as feature extractors, with SCAN's small-image stems (spec §6.1).

Parameter names match torchvision's (`conv1`, `layer1`, ...), so torchvision or MoCo-converted
checkpoints load with `strict=False` (only `fc.*` is missing).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.resnet import ResNet as TorchvisionResNet

from sslzoo.errors import ConfigError
from sslzoo.nets.options import forwards_options

_ARCHITECTURES = {18: (BasicBlock, [2, 2, 2, 2]), 50: (Bottleneck, [3, 4, 6, 3])}


class ResNet(TorchvisionResNet):
    """`torchvision.models.resnet{depth}(weights=None)` with `fc = Identity`: forward gives (N, feature_dim).

    `cifar_stem`: 3x3 stride-1 conv and no max-pool (SCAN `resnet_cifar.py`, SimCLR's CIFAR variant).
    `stl_stem`: the same conv followed by MaxPool(2, stride 2, padding 1) (SCAN `resnet_stl.py`);
    on 96 px inputs the last map is 7x7, where SCAN's AvgPool(7) equals our global pool.
    `input_channels` other than 3 rebuilds the first conv (torchvision's init) for that many channels.
    """

    def __init__(
        self, depth: int = 18, cifar_stem: bool = False, stl_stem: bool = False, zero_init_residual: bool = False,
        input_channels: int = 3,
    ):
        if depth not in _ARCHITECTURES:
            raise ConfigError(f"depth must be one of {sorted(_ARCHITECTURES)}, got {depth}")
        if cifar_stem and stl_stem:
            raise ConfigError("choose at most one of cifar_stem and stl_stem")
        block, layers = _ARCHITECTURES[depth]
        super().__init__(block, layers, zero_init_residual=zero_init_residual)
        if cifar_stem or stl_stem:
            self.conv1 = nn.Conv2d(input_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=2, stride=2, padding=1)
        elif input_channels != 3:
            self.conv1 = nn.Conv2d(input_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.feature_dim = self.fc.in_features
        self.fc = nn.Identity()


@forwards_options(ResNet, "depth")
def resnet18(**kwargs) -> ResNet:
    return ResNet(depth=18, **kwargs)


@forwards_options(ResNet, "depth")
def resnet50(**kwargs) -> ResNet:
    return ResNet(depth=50, **kwargs)
