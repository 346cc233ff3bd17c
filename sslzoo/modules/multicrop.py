from __future__ import annotations

import torch
from torch import nn


def resolution_runs(crops: list[torch.Tensor]) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive crops with the same spatial size."""
    runs, start = [], 0
    for i in range(1, len(crops) + 1):
        if i == len(crops) or crops[i].shape[-2:] != crops[start].shape[-2:]:
            runs.append((start, i))
            start = i
    return runs


class MultiCropNetwork(nn.Module):
    """Backbone + head fed a list of crops, as SwAV's and DINO's multi-crop wrappers do:
    one backbone pass per run of consecutive same-resolution crops (so the labeled batch,
    the global crops and the mixed views share one BatchNorm batch), then one head pass
    over all features. Returns the head's outputs (a dict of tensors with one row per
    input image, in input order) plus "backbone", the backbone features."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops: list[torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        features = torch.cat([self.backbone(torch.cat(crops[start:end])) for start, end in resolution_runs(crops)])
        return {"backbone": features, **self.head(features)}
