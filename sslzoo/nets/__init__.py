"""Backbones: `nn.Module`s whose forward returns pooled features (N, feature_dim).

Every backbone has an integer `feature_dim`. Heads (classifiers, projectors) are not part of the
backbone; methods add them. Build one by name with `build_backbone`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sslzoo.errors import ConfigError
from sslzoo.nets.cnn13 import CNN13
from sslzoo.nets.mean_only_batch_norm import MeanOnlyBatchNorm
from sslzoo.nets.options import accepted_options, check_options
from sslzoo.nets.resnet import ResNet, resnet18, resnet50
from sslzoo.nets.ssclustering_wrn import SSCLUSTERING_BACKBONES
from sslzoo.nets.timm_backbone import TimmBackbone, check_timm_name, timm_takes_img_size
from sslzoo.nets.weight_norm import data_dependent_init_, weight_normalize_
from sslzoo.nets.wide_resnet import WideResNet, wrn_28_2, wrn_28_8, wrn_37_2

TIMM_PREFIX = "timm:"
RGB = 3

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


def build_backbone(name: str, input_channels: int = RGB, image_size: int | None = None, **options) -> nn.Module:
    """Build a backbone by name: one of `BACKBONES`, or "timm:<model name>" for any timm model.

    `options` go to the backbone's constructor (for timm: to `TimmBackbone`, then
    `timm.create_model`); a key the constructor does not take is a ConfigError. `input_channels`
    (the images' channels) goes to builders that take it (`in_chans` for timm); `image_size`
    (the data's) to timm models whose constructor takes `img_size` (ViTs), unless `options` set it;
    other backbones do not need it.
    """
    if name.startswith(TIMM_PREFIX):
        return _build_timm(name, input_channels, image_size, options)
    if name not in BACKBONES:
        raise ConfigError(
            f"Unknown backbone {name!r}. Available: {', '.join(BACKBONES)}; "
            f"or '{TIMM_PREFIX}<model name>' for any timm model (e.g. 'timm:resnet50', 'timm:vit_small_patch16_224')."
        )
    builder = BACKBONES[name]
    fixed = [key for key in options if key in getattr(builder, "fixed_options", ())]
    if fixed:
        general = next((other for other, built in BACKBONES.items() if built is builder.options_target), None)
        fix = f"use backbone {general!r} to choose {'them' if len(fixed) > 1 else 'it'}" if general else "remove it from backbone_options"
        raise ConfigError(f"backbone {name!r} fixes {', '.join(fixed)}; {fix}")
    accepted = accepted_options(builder)
    check_options("backbone_options", options, accepted, f"backbone {name!r}")
    if accepted is not None and "input_channels" not in accepted:
        if input_channels != RGB:
            raise ConfigError(f"backbone {name!r} takes {RGB}-channel images only, but the images have {input_channels}; use another backbone")
    elif accepted is not None or input_channels != RGB:
        options["input_channels"] = input_channels
    return builder(**options)


def _build_timm(name: str, input_channels: int, image_size: int | None, options: dict) -> nn.Module:
    model_name = name[len(TIMM_PREFIX):]
    if not model_name:
        raise ConfigError(f"{name!r} names no timm model; use e.g. 'timm:resnet50'")
    check_timm_name(model_name)
    if options.get("in_chans", input_channels) != input_channels:
        raise ConfigError(
            f"backbone_options in_chans={options['in_chans']} contradicts input_channels={input_channels} "
            "(the data's channels); remove it from backbone_options"
        )
    if input_channels != RGB:
        options["in_chans"] = input_channels
    if image_size is not None and "img_size" not in options and timm_takes_img_size(model_name):
        options["img_size"] = image_size
    return TimmBackbone(model_name, **options)


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
