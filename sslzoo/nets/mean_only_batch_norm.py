"""Mean-only batch normalisation (Salimans & Kingma 2016, "Weight Normalization", §3).

As in LC-MeanTeacher's `WN_Conv2d_Mean_Only_BN` / `WN_Linear_Mean_Only_BN` (spec §5.1): the layer
subtracts the per-channel mean and adds a learned bias, with no variance scaling; the scale comes
from the weight-normalised layer in front of it.
"""

from __future__ import annotations

import torch
from torch import nn


class MeanOnlyBatchNorm(nn.Module):
    """Subtract the per-channel mean (batch mean in train mode, running mean in eval) and add a bias.

    Accepts (N, C) or (N, C, *spatial) inputs. In train mode the running mean is updated as
    `running_mean <- (1 - momentum) * running_mean + momentum * batch_mean` (LC-MT: momentum 0.001),
    and the gradient flows through the batch mean as in the reference.
    """

    def __init__(self, num_features: int, momentum: float = 0.001):
        super().__init__()
        self.num_features = num_features
        self.momentum = momentum
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            mean = x.mean(dim=[0, *range(2, x.dim())])
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
        else:
            mean = self.running_mean.to(x.dtype)
        return x - mean.view(channel_shape) + self.bias.to(x.dtype).view(channel_shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}"
