"""Heads of the clustering-based methods: SwAV/Suave's projector + prototypes, DINO's head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .prototypes import Prototypes


class SwAVHead(nn.Module):
    """Linear(d, h)-BN-ReLU-Linear(h, p) -> L2-normalise -> prototypes (cosine scores).

    Returns "hidden" (after the ReLU), "projection" (before normalisation), "z" and
    "scores"; the first two are the online probes' tap points (Suave's multihead_eval).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, projection_dim: int = 128, num_prototypes: int = 3000):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True))
        self.projection = nn.Linear(hidden_dim, projection_dim)
        self.prototypes = Prototypes(projection_dim, num_prototypes)
        self.tap_dims = {"hidden": hidden_dim, "projection": projection_dim}

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.hidden(features)
        projection = self.projection(hidden)
        z = F.normalize(projection, dim=1)
        return {"hidden": hidden, "projection": projection, "z": z, "scores": self.prototypes(z)}


class DINOHead(nn.Module):
    """DINO's head: an MLP (GELU, no BN) to a bottleneck, L2-normalise, then a
    weight-normalised bias-free layer to `out_dim` (its norm frozen at 1 when
    `norm_last_layer`; Daino leaves it free). Returns the normalised "bottleneck" and "scores"."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256, num_layers: int = 3, norm_last_layer: bool = False):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.GELU()]
        layers.append(nn.Linear(dims[-1], bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(False)
        self.tap_dims = {"bottleneck": bottleneck_dim}

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        bottleneck = self.mlp(features)
        bottleneck = F.normalize(bottleneck, dim=-1)
        return {"bottleneck": bottleneck, "scores": self.last_layer(bottleneck)}


class ProjectionHead(nn.Module):
    """SimCLR's projector as SCAN's pretext uses it: Linear(d, h)-ReLU-Linear(h, p), L2-normalised ("z")."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, projection_dim: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, projection_dim))
        self.tap_dims: dict[str, int] = {}

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z": F.normalize(self.mlp(features), dim=1)}
