"""The augmentation g of Boosted SSL's clustering step (spec §2.2, `transforms.py`)."""
from __future__ import annotations

import torch

from .compose import View
from .contrastive import ColorJitter
from .geometry import random_crop_geometry
from .normalize import Normalize


class UInt8ColorJitter(torch.nn.Module):
    """Colour jitter on a uint8 image (through [0, 1] floats, rounded back)."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float):
        super().__init__()
        self.jitter = ColorJitter(brightness, contrast, saturation, hue)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.jitter(img.float() / 255.0).mul(255.0).round().to(torch.uint8)


def clustering_view(info, hflip: bool | None = None, translate: float = 0.125) -> View:
    """ColorJitter(brightness, contrast, saturation 0.4, hue 0.125), then the weak view's flip
    (none for SVHN) and 12.5% reflect-padded translation. The official code normalises to
    [-1, 1]; we use the dataset's mean and std like every other view."""
    jitter = UInt8ColorJitter(0.4, 0.4, 0.4, 0.125)
    return View([jitter, *random_crop_geometry(info, hflip, translate)], Normalize(info.mean, info.std))
