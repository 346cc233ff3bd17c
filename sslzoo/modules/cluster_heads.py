from __future__ import annotations

import torch
from torch import nn


class ClusterHeads(nn.Module):
    """SCAN's clustering heads: `num_heads` independent Linear(d, num_clusters) on the same
    features; forward returns logits of shape (num_heads, batch, num_clusters)."""

    def __init__(self, feature_dim: int, num_clusters: int, num_heads: int = 1):
        super().__init__()
        if num_heads < 1 or num_clusters < 2:
            raise ValueError(f"need num_heads >= 1 and num_clusters >= 2, got {num_heads} and {num_clusters}")
        self.heads = nn.ModuleList(nn.Linear(feature_dim, num_clusters) for _ in range(num_heads))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(features) for head in self.heads])


class ClusterNetwork(nn.Module):
    """Backbone + clustering heads; `forward` gives every head's logits (num_heads, batch, clusters)."""

    def __init__(self, backbone: nn.Module, num_clusters: int, num_heads: int = 1):
        super().__init__()
        self.backbone = backbone
        self.heads = ClusterHeads(backbone.feature_dim, num_clusters, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.backbone(x))
