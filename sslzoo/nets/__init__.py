"""Backbones: `nn.Module`s whose forward returns pooled features (N, feature_dim).

Every backbone has an integer `feature_dim`. Heads (classifiers, projectors) are not part of the
backbone; methods add them. Build one by name with `build_backbone`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sslzoo.nets.cnn13 import CNN13
from sslzoo.nets.mean_only_batch_norm import MeanOnlyBatchNorm
from sslzoo.nets.resnet import ResNet, resnet18, resnet50
from sslzoo.nets.ssclustering_wrn import SSCLUSTERING_BACKBONES
from sslzoo.nets.timm_backbone import TimmBackbone
from sslzoo.nets.weight_norm import data_dependent_init_, weight_normalize_
from sslzoo.nets.wide_resnet import WideResNet, wrn_28_2, wrn_28_8, wrn_37_2

TIMM_PREFIX = "timm:"

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "wrn_28_2": wrn_28_2,
    "wrn_28_8": wrn_28_8,
    "wrn_37_2": wrn_37_2,
    "wide_resnet": WideResNet,  # any depth/width, e.g. backbone_options {depth: 10, widen_factor: 1}
    "cnn13": CNN13,
    "resnet18": resnet18,
    "resnet50": resnet50,
}
BACKBONES.update(SSCLUSTERING_BACKBONES)  # paper 000's Mish + PSBatchNorm WRNs: "wrn_28_2_mish", "wrn_37_2_mish"


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a backbone by name: one of `BACKBONES`, or "timm:<model name>" for any timm model.

    Keyword arguments go to the backbone's constructor (for timm: to `TimmBackbone`).
    """
    if name.startswith(TIMM_PREFIX):
        model_name = name[len(TIMM_PREFIX):]
        if not model_name:
            raise ValueError(f"{name!r} names no timm model; use e.g. 'timm:resnet50'")
        return TimmBackbone(model_name, **kwargs)
    if name not in BACKBONES:
        raise ValueError(
            f"Unknown backbone {name!r}. Available: {', '.join(BACKBONES)}; "
            f"or '{TIMM_PREFIX}<model name>' for any timm model (e.g. 'timm:resnet50', 'timm:vit_small_patch16_224')."
        )
    return BACKBONES[name](**kwargs)


__all__ = [
    "BACKBONES",
    "CNN13",
    "MeanOnlyBatchNorm",
    "ResNet",
    "TIMM_PREFIX",
    "TimmBackbone",
    "WideResNet",
    "build_backbone",
    "data_dependent_init_",
    "resnet18",
    "resnet50",
    "weight_normalize_",
    "wrn_28_2",
    "wrn_28_8",
    "wrn_37_2",
]
