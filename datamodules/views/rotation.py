from __future__ import annotations

import torch

from .compose import View
from .geometry import random_crop_geometry
from .normalize import Normalize


class RotationView(torch.nn.Module):
    """RotNet input: one randomly cropped image in its 4 rotations, stacked (4, C, H, W).

    The rotation label of entry k is k (k x 90 degrees counter-clockwise).
    """

    def __init__(self, base: View):
        super().__init__()
        self.base = base

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.base(img)
        return torch.stack([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])


def rotation_view(info, hflip: bool | None = None) -> RotationView:
    return RotationView(View(random_crop_geometry(info, hflip), Normalize(info.mean, info.std)))
