from __future__ import annotations

import torch
from torch import nn

from .distributed import all_reduce_mean


class Center(nn.Module):
    """DINO's centre c <- m c + (1 - m) mean(teacher outputs), the mean taken over every
    process's batch (all-reduced). A persistent buffer, updated once per optimizer step."""

    def __init__(self, dim: int, momentum: float = 0.9):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("value", torch.zeros(1, dim))

    @torch.no_grad()
    def update(self, teacher_outputs: torch.Tensor) -> None:
        batch_mean = all_reduce_mean(teacher_outputs.detach().float().mean(dim=0, keepdim=True))
        self.value.mul_(self.momentum).add_(batch_mean, alpha=1 - self.momentum)
