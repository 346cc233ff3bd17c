from __future__ import annotations

import torch
from torch import nn

from ..functional.simmatch import align_distribution
from .distributed import all_reduce_mean


class DistributionAlignment(nn.Module):
    """A FIFO queue of the last `length` per-step mean predictions (all processes' batches),
    and p <- normalize(p / mean(queue)) (ReMixMatch/SimMatch DA with a uniform target).

    The queue starts at zeros as in the reference: the common scale cancels in the
    renormalisation. The current step's mean is pushed before aligning.
    """

    def __init__(self, num_classes: int, length: int):
        super().__init__()
        if length <= 0:
            raise ValueError("the distribution-alignment queue needs length >= 1")
        self.register_buffer("queue", torch.zeros(length, num_classes))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, probs: torch.Tensor) -> None:
        self.queue[self.position] = all_reduce_mean(probs.mean(dim=0)).to(self.queue.dtype)
        self.position.copy_((self.position + 1) % len(self.queue))

    @torch.no_grad()
    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Push this step's mean, then align."""
        self.push(probs)
        return align_distribution(probs, self.queue.mean(dim=0))
