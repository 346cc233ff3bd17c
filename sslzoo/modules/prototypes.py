from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Prototypes(nn.Module):
    """K prototype vectors as a bias-free linear layer whose rows are kept at unit norm, so
    scores of L2-normalised embeddings are cosine similarities (SwAV, Suave: the rows are
    re-normalised before every training step, as the official code does)."""

    def __init__(self, dim: int, num_prototypes: int):
        super().__init__()
        self.layer = nn.Linear(dim, num_prototypes, bias=False)
        self.normalize_()

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight

    @torch.no_grad()
    def normalize_(self) -> None:
        self.layer.weight.copy_(F.normalize(self.layer.weight, dim=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layer(z)
