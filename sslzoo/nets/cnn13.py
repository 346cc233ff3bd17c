"""The 13-layer ConvNet ("conv-large") of Mean Teacher, as LC-MeanTeacher's `ShallowNet` builds it.

Reference: jay1204/local_clustering_with_mt_for_ssl `model/mean_teacher_arch.py` (spec §5.1).
Every conv is weight-normalised and followed by mean-only BN and LeakyReLU(0.1) (`norm="mean_only"`);
`norm="batch"` gives the Mean Teacher PyTorch code's weight-normed conv + BatchNorm instead.
The LeakyReLUs work in place (less memory traffic, the same values and gradients): a forward hook
on a norm layer that keeps its output must keep a copy.
"""

from __future__ import annotations

import torch
from torch import nn

from sslzoo.errors import ConfigError

from sslzoo.nets.mean_only_batch_norm import MeanOnlyBatchNorm
from sslzoo.nets.weight_norm import data_dependent_init_, weight_normalize_


class ConvNormAct(nn.Module):
    """Weight-normed conv (no bias: the norm carries it) -> mean-only BN or BN -> LeakyReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: int,
        norm: str, norm_momentum: float, leaky_slope: float,
    ):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.conv = weight_normalize_(conv)
        if norm == "mean_only":
            self.norm = MeanOnlyBatchNorm(out_channels, momentum=norm_momentum)
        else:
            self.norm = nn.BatchNorm2d(out_channels, momentum=norm_momentum)
        self.act = nn.LeakyReLU(leaky_slope, inplace=True)  # the norm's output is not needed by its backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    def data_dependent_init_(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(data_dependent_init_(self.conv, self.norm, x))


class CNN13(nn.Module):
    """3x[conv3x3 128] -> maxpool -> dropout -> 3x[conv3x3 256] -> maxpool -> dropout ->
    conv3x3 512 (valid) -> conv1x1 256 -> conv1x1 128 -> global average pool: (N, 128).

    On 32x32 inputs the last feature map is 6x6, as in the reference's AvgPool(6).
    """

    feature_dim = 128

    def __init__(
        self,
        norm: str = "mean_only",
        norm_momentum: float = 0.001,
        dropout: float = 0.5,
        leaky_slope: float = 0.1,
        input_channels: int = 3,
    ):
        super().__init__()
        if norm not in ("mean_only", "batch"):
            raise ConfigError(f"norm must be 'mean_only' or 'batch', got {norm!r}")

        def conv(in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> ConvNormAct:
            return ConvNormAct(in_channels, out_channels, kernel_size, padding, norm, norm_momentum, leaky_slope)

        self.layers = nn.Sequential(
            conv(input_channels, 128), conv(128, 128), conv(128, 128),
            nn.MaxPool2d(2, stride=2),
            nn.Dropout(dropout),
            conv(128, 256), conv(256, 256), conv(256, 256),
            nn.MaxPool2d(2, stride=2),
            nn.Dropout(dropout),
            conv(256, 512, padding=0),
            conv(512, 256, kernel_size=1, padding=0),
            conv(256, 128, kernel_size=1, padding=0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).mean(dim=(2, 3))

    @torch.no_grad()
    def data_dependent_init_(self, x: torch.Tensor) -> torch.Tensor:
        """Weight-norm data-dependent init on one batch, layer by layer (LC-MT `param_init`).

        The reference runs it once on a labeled batch, in train mode (dropout active), before
        training; running means are left untouched. Returns the pooled features of the batch.
        """
        for layer in self.layers:
            x = layer.data_dependent_init_(x) if isinstance(layer, ConvNormAct) else layer(x)
        return x.mean(dim=(2, 3))
