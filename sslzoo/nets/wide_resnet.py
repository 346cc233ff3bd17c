"""WideResNet as FixMatch defines it.

Reference: google-research/fixmatch `libml/models.py::ResNet.classifier` (spec §1.1).
The optional flags reproduce the variant of paper 000 (`SSClustering/networks/wide_resnet.py`,
spec §1.1 last bullet and pitfall 11): Mish, PSBatchNorm, and its handling of transition units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sslzoo.errors import ConfigError
from sslzoo.nets.options import forwards_options

FIXMATCH_UNITS_PER_STAGE = 4  # `repeat=4` in FixMatch
STEM_CHANNELS = 16


class ConstantShift(nn.Module):
    """Adds a constant. After a BatchNorm this is PSBatchNorm (arXiv:2001.11216).

    A separate module rather than a BatchNorm subclass, so that
    `nn.SyncBatchNorm.convert_sync_batchnorm` keeps the shift.
    """

    def __init__(self, shift: float, inplace: bool = False):
        super().__init__()
        self.shift = shift
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.add_(self.shift) if self.inplace else x + self.shift

    def extra_repr(self) -> str:
        return f"shift={self.shift}"


class PreActivationUnit(nn.Module):
    """BN -> act -> conv3x3(stride) -> BN -> act -> conv3x3, plus a shortcut.

    The shortcut is a 1x1 conv when the shape changes. It reads the activated input when
    `activate_before_residual`, else the raw input (FixMatch `residual()`).
    `preactivate=False` drops the first BN -> act (see `WideResNet.preactivate_transitions`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        activate_before_residual: bool,
        preactivate: bool,
        norm_act: Callable[[int], nn.Module],
        conv_bias: bool,
        inplace: bool = False,
    ):
        super().__init__()
        self.activate_before_residual = activate_before_residual
        self.inplace = inplace
        self.preact = norm_act(in_channels) if preactivate else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=conv_bias)
        self.norm_act2 = norm_act(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=conv_bias)
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=conv_bias)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.preact(x)
        residual = self.conv2(self.norm_act2(self.conv1(activated)))
        shortcut = self.shortcut(activated if self.activate_before_residual else x)
        # conv2's output is not needed by its backward: adding into it saves one activation.
        return residual.add_(shortcut) if self.inplace else shortcut + residual


class WideResNet(nn.Module):
    """Pre-activation WideResNet backbone; `forward` returns pooled features (N, feature_dim).

    depth = stages * (2 * units_per_stage + 1) + 1 (stem, two 3x3 convs per unit, one 1x1
    shortcut per stage): WRN-28 has 3 stages of 4 units, WRN-37 has 4 stages of 4 units. With
    `stages=None`, depth 6n+4 gives 3 stages of n units, other depths 9s+1 give s stages of 4 units.
    Stage s has `16 * widen_factor * 2**s` channels.

    Defaults are FixMatch's: LeakyReLU(0.1), BN momentum 0.001 and eps 0.001 (TF momentum 0.999
    and TF default eps), kaiming fan-out init. TF convs carry a bias (`conv_bias=True`); the
    PyTorch ports drop it, and so does our default.

    Paper 000's variant: `activation="mish", bn_shift=0.1, preactivate_transitions=False, bn_eps=1e-5`.
    `first_stride=2` gives USB's `wrn_var_37_2`.

    `inplace` (default) writes LeakyReLU, the PSBatchNorm shift and the residual sum into the
    tensor they read, as USB's and kekmodel's WRNs do: the same values and gradients with less
    memory traffic (a WRN-28-2 step at 960 images on CPU: 11.9 s -> 8.2 s). `inplace=False`
    keeps every intermediate, for forward hooks that hold on to a BatchNorm's output.
    """

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 2,
        stages: int | None = None,
        bn_momentum: float = 0.001,
        bn_eps: float = 0.001,
        leaky_slope: float = 0.1,
        conv_bias: bool = False,
        activation: str = "leaky_relu",
        first_stride: int = 1,
        bn_shift: float = 0.0,
        preactivate_transitions: bool = True,
        input_channels: int = 3,
        inplace: bool = True,
    ):
        super().__init__()
        stages, units_per_stage = _stages_and_units(depth, stages)
        if activation not in ("leaky_relu", "mish"):
            raise ConfigError(f"activation must be 'leaky_relu' or 'mish', got {activation!r}")

        def norm_act(channels: int) -> nn.Sequential:
            layers = [nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)]
            if bn_shift:
                layers.append(ConstantShift(bn_shift, inplace))
            # Mish stays out of place: its backward reads its input.
            layers.append(nn.LeakyReLU(leaky_slope, inplace) if activation == "leaky_relu" else nn.Mish())
            return nn.Sequential(*layers)

        self.stage_channels = tuple(STEM_CHANNELS * widen_factor << s for s in range(stages))
        self.feature_dim = self.stage_channels[-1]
        self.stem = nn.Conv2d(input_channels, STEM_CHANNELS, 3, padding=1, bias=conv_bias)

        in_channels = STEM_CHANNELS
        stage_modules = []
        for index, channels in enumerate(self.stage_channels):
            units = []
            for unit in range(units_per_stage):
                is_transition = unit == 0 and in_channels != channels
                activate_before_residual = index == 0 and unit == 0
                units.append(
                    PreActivationUnit(
                        in_channels,
                        channels,
                        stride=(first_stride if index == 0 else 2) if unit == 0 else 1,
                        activate_before_residual=activate_before_residual,
                        # The PyTorch ports (kekmodel, paper 000) feed the raw input to conv1 and
                        # the shortcut of a transition unit without activate_before_residual;
                        # FixMatch's TF code pre-activates every unit.
                        preactivate=preactivate_transitions or activate_before_residual or not is_transition,
                        norm_act=norm_act,
                        conv_bias=conv_bias,
                        inplace=inplace,
                    )
                )
                in_channels = channels
            stage_modules.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stage_modules)
        self.final_norm_act = norm_act(self.feature_dim)
        self._initialize()

    def _initialize(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # N(0, 2 / (k*k*out_channels)), TF's stddev = rsqrt(0.5 * k * k * filters)
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_norm_act(self.stages(self.stem(x)))
        return x.mean(dim=(2, 3))


def _stages_and_units(depth: int, stages: int | None) -> tuple[int, int]:
    """Solve depth = stages * (2 * units + 1) + 1.

    Without `stages`: 3 stages when depth = 6n + 4 (standard WRN naming; 28 -> 4 units), else
    FixMatch's 4-unit stages when depth = 9s + 1 (37 -> 4 stages).
    """
    if stages is None:
        if (depth - 4) % 6 == 0 and depth >= 10:
            return 3, (depth - 4) // 6
        stages, remainder = divmod(depth - 1, 2 * FIXMATCH_UNITS_PER_STAGE + 1)
        if remainder or stages < 1:
            raise ConfigError(
                f"depth={depth} is neither 6n+4 (3 stages of n units) nor 9s+1 (s stages of "
                f"{FIXMATCH_UNITS_PER_STAGE} units, e.g. 37); pass `stages` explicitly"
            )
        return stages, FIXMATCH_UNITS_PER_STAGE
    units, remainder = divmod(depth - 1 - stages, 2 * stages)
    if remainder or units < 1:
        raise ConfigError(f"depth={depth} with stages={stages} does not satisfy depth = stages * (2 * units + 1) + 1")
    return stages, units


@forwards_options(WideResNet, "depth", "widen_factor")
def wrn_28_2(**kwargs) -> WideResNet:
    """FixMatch CIFAR-10/SVHN backbone (`filters=32, scales=3`), ~1.47M parameters with a 10-class head."""
    return WideResNet(depth=28, widen_factor=2, **kwargs)


@forwards_options(WideResNet, "depth", "widen_factor")
def wrn_28_8(**kwargs) -> WideResNet:
    """FixMatch CIFAR-100 backbone (`filters=128`; not 28-10, fixmatch#26), ~23.4M parameters."""
    return WideResNet(depth=28, widen_factor=8, **kwargs)


@forwards_options(WideResNet, "depth", "widen_factor")
def wrn_37_2(**kwargs) -> WideResNet:
    """FixMatch STL-10 backbone (`scales=4`: 32/64/128/256 channels), ~5.9M parameters (fixmatch#34)."""
    return WideResNet(depth=37, widen_factor=2, **kwargs)
