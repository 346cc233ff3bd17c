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
