"""Paper 000's WideResNet (Boosted SSL, `SSClustering/networks/wide_resnet.py`).

The same network as FixMatch's WRN (`wide_resnet.py`) with four differences, all options of
`WideResNet`:
- Mish instead of LeakyReLU(0.1) (`class mish`);
- PSBatchNorm: `PSBatchNorm2d.forward` returns `BatchNorm2d(x) + alpha` with alpha = 0.1
  (arXiv:2001.11216), every BN including the last one; momentum 0.001 and PyTorch's eps 1e-5;
- a transition unit without `activate_before_residual` feeds the raw input to conv1 and the
  shortcut (`BasicBlock.forward`: `conv1(out if self.equalInOut else x)`).
Convolutions have no bias and use kaiming fan-out init, as ours. Depth 28 -> 3 stages, 37 -> 4
(`num_blocks = depth % 8 - 1`; `scripts/stl10.sh --depth 37`).
"""
from __future__ import annotations

from .options import forwards_options
from .wide_resnet import WideResNet

SSCLUSTERING_OPTIONS = dict(activation="mish", bn_shift=0.1, preactivate_transitions=False, bn_eps=1e-5, bn_momentum=0.001)


@forwards_options(WideResNet, "depth", "widen_factor")
def wrn_28_2_mish(**kwargs) -> WideResNet:
    """Paper 000's CIFAR-10 / SVHN backbone (`--depth 28 --widen_factor 2`, the defaults)."""
    return WideResNet(depth=28, widen_factor=2, **{**SSCLUSTERING_OPTIONS, **kwargs})


@forwards_options(WideResNet, "depth", "widen_factor")
def wrn_37_2_mish(**kwargs) -> WideResNet:
    """Paper 000's STL-10 backbone (`--depth 37`: 4 stages, 32/64/128/256 channels)."""
    return WideResNet(depth=37, widen_factor=2, **{**SSCLUSTERING_OPTIONS, **kwargs})


SSCLUSTERING_BACKBONES = {"wrn_28_2_mish": wrn_28_2_mish, "wrn_37_2_mish": wrn_37_2_mish}
