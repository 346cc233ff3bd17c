from __future__ import annotations

import torch
from torch import nn

from ..functional.losses import cross_entropy

PROBE_REDUCTIONS = ("sum", "mean")


class OnlineProbes(nn.Module):
    """Linear classifiers on detached features at several depths ("tap points"), trained
    alongside the method on the labeled rows to monitor which layer holds the best
    representation (Suave's multihead_eval). They never change the features."""

    def __init__(self, tap_dims: dict[str, int], num_classes: int):
        super().__init__()
        self.heads = nn.ModuleDict({name: nn.Linear(dim, num_classes) for name, dim in tap_dims.items()})

    def forward(self, taps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: head(taps[name].detach()) for name, head in self.heads.items()}

    def loss(
        self, taps: dict[str, torch.Tensor], labels: torch.Tensor, label_smoothing: float = 0.0, reduction: str = "sum"
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The probes' CE, summed (Suave's online_loss += CE per head, suave/main_suave.py:680-683)
        or averaged over the probes, and each probe's accuracy on this batch."""
        if reduction not in PROBE_REDUCTIONS:
            raise ValueError(f"probe reduction must be one of {PROBE_REDUCTIONS}, got {reduction!r}")
        logits = self(taps)
        losses = torch.stack([cross_entropy(l, labels, label_smoothing=label_smoothing) for l in logits.values()])
        accuracy = {name: (l.argmax(dim=1) == labels).float().mean() for name, l in logits.items()}
        return (losses.sum() if reduction == "sum" else losses.mean()), accuracy
