"""Weight normalisation (Salimans & Kingma 2016) with LC-MeanTeacher's init (spec §5.1).

`w = g * v / ||v||` per output unit, via `torch.nn.utils.parametrizations.weight_norm`:
`g` is `layer.parametrizations.weight.original0`, `v` is `...original1`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from sslzoo.nets.mean_only_batch_norm import MeanOnlyBatchNorm


def weight_normalize_(layer: nn.Conv2d | nn.Linear, init_std: float = 0.05) -> nn.Module:
    """Weight-normalise `layer` in place, starting from v ~ N(0, init_std), g = 1, bias = 0 (LC-MT)."""
    nn.init.normal_(layer.weight, std=init_std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    parametrizations.weight_norm(layer, name="weight", dim=0)
    with torch.no_grad():
        layer.parametrizations.weight.original0.fill_(1.0)
    return layer


@torch.no_grad()
def data_dependent_init_(
    layer: nn.Module, norm: nn.Module | None, x: torch.Tensor, init_std: float = 1.0
) -> torch.Tensor:
    """Rescale `g` so that `layer(x)` has per-unit std `init_std` on this batch; return the normalised output.

    The output, `(layer(x) - mean) * init_std / std`, is what the next layer should be initialised on.
    As LC-MT's `param_init` (init_mode) does, a following MeanOnlyBatchNorm gets bias = -mean * s
    (the Salimans & Kingma bias for a plain weight-normed layer). Since that norm also subtracts
    the batch mean, the reference's layers start with this extra shift; we keep it for fidelity.
    """
    pre_activation = layer(x)
    reduce_dims = [0, *range(2, pre_activation.dim())]
    channel_shape = (1, -1) + (1,) * (pre_activation.dim() - 2)
    mean = pre_activation.mean(reduce_dims)
    centered = pre_activation - mean.view(channel_shape)
    scale = init_std / torch.sqrt(centered.pow(2).mean(reduce_dims) + 1e-8)
    gain = layer.parametrizations.weight.original0
    gain.mul_(scale.view(-1, *[1] * (gain.dim() - 1)))
    if isinstance(norm, MeanOnlyBatchNorm):
        norm.bias.copy_(-mean * scale)
    return centered * scale.view(channel_shape)


def is_weight_normed(module: nn.Module) -> bool:
    """Whether `module.weight` is parametrised as g * v / ||v|| by `weight_normalize_`."""
    weight = getattr(getattr(module, "parametrizations", None), "weight", None)
    return weight is not None and hasattr(weight, "original0")


def has_weight_norm(network: nn.Module) -> bool:
    return any(is_weight_normed(m) for m in network.modules())


@torch.no_grad()
def data_dependent_init_layers_(layers: nn.Sequential, x: torch.Tensor, init_std: float = 1.0) -> torch.Tensor:
    """LC-MT's init pass through `layers`: each weight-normed layer (with the MeanOnlyBatchNorm right
    after it) is initialised on what the layers before it output in this pass; other modules just run."""
    modules = list(layers)
    i = 0
    while i < len(modules):
        if is_weight_normed(modules[i]):
            norm = modules[i + 1] if i + 1 < len(modules) and isinstance(modules[i + 1], MeanOnlyBatchNorm) else None
            x = data_dependent_init_(modules[i], norm, x, init_std)
            i += 1 if norm is None else 2
        else:
            x = modules[i](x)
            i += 1
    return x


@torch.no_grad()
def data_dependent_init_classifier_(backbone: nn.Module, head: nn.Module, x: torch.Tensor, head_init_std: float = 0.1) -> torch.Tensor:
    """LC-MT's `param_init` (utils/train_helper.py) of backbone + head on one batch `x`; returns the
    logits of that pass. The backbone's weight-normed layers (its `data_dependent_init_`) get output
    std 1, the weight-normed head `head_init_std` (`WN_Linear_Mean_Only_BN(..., init_stdv=0.1)` in
    model/mean_teacher_arch.py). Parts that are not weight-normed just run."""
    init_backbone = getattr(backbone, "data_dependent_init_", None)
    features = init_backbone(x) if init_backbone is not None else backbone(x)
    return data_dependent_init_layers_(head, features, head_init_std) if isinstance(head, nn.Sequential) else head(features)
