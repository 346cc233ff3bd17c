from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import MeanOnlyBatchNorm, weight_normalize_

HEADS = ("linear", "weight_norm")


def build_head(feature_dim: int, num_classes: int, kind: str = "linear") -> nn.Module:
    """"linear": FixMatch's dense layer (Glorot-normal weights, zero bias).
    "weight_norm": Mean Teacher / LC-MT's weight-normalised linear layer followed by
    mean-only BatchNorm (MeanTeacher applies the reference's data-dependent init at fit start)."""
    if kind == "linear":
        head = nn.Linear(feature_dim, num_classes)
        nn.init.xavier_normal_(head.weight)
        nn.init.zeros_(head.bias)
        return head
    if kind == "weight_norm":
        return nn.Sequential(weight_normalize_(nn.Linear(feature_dim, num_classes, bias=False), init_std=0.1), MeanOnlyBatchNorm(num_classes))
    raise ValueError(f"unknown head {kind!r}; choose one of {HEADS}")


class Classifier(nn.Module):
    """Backbone features -> linear head (logits), with an optional projection head.

    `forward` returns logits. With `projection_dim`, `project` maps features through
    Linear(d, d)-ReLU-Linear(d, projection_dim) and L2-normalises (SimMatch's head).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, projection_dim: int | None = None, head: str = "linear"):
        super().__init__()
        self.backbone = backbone
        self.head = build_head(backbone.feature_dim, num_classes, head)
        dim = backbone.feature_dim
        self.projector = (
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim)) if projection_dim else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return features, self.head(features)

    def logits_and_projection(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.projector is None:
            raise RuntimeError("this classifier was built without a projection head (projection_dim)")
        features = self.backbone(x)
        return self.head(features), F.normalize(self.projector(features), dim=1)
