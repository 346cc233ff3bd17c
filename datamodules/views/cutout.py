"""FixMatch's Cutout (``CutoutAbs``): one grey square at a uniformly random centre."""
from __future__ import annotations

import torch
from torch import Tensor


class Cutout(torch.nn.Module):
    """Fill the square [x0 - size/2, x0 + size/2) x [y0 - size/2, y0 + size/2), clipped to the
    image, with `fill` in every channel; the centre pixel (x0, y0) is uniform over the image.

    This is google-research/fixmatch's cutout (16 px on 32 px images). kekmodel's
    ``CutoutAbs`` differs slightly: PIL's inclusive rectangle makes it 17 px wide, and
    near the top/left edges it shifts the square instead of clipping it.
    Works on (..., H, W) uint8 or float tensors and returns a new tensor.
    """

    def __init__(self, size: int, fill: int = 127):
        super().__init__()
        if size < 0:
            raise ValueError(f"cutout size must be >= 0, got {size}")
        self.size = size
        self.fill = fill

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        h, w = img.shape[-2:]
        centre = int(torch.randint(h * w, (), generator=generator))
        y0, x0 = divmod(centre, w)
        top, left = y0 - self.size // 2, x0 - self.size // 2
        bottom, right = min(h, top + self.size), min(w, left + self.size)
        top, left = max(0, top), max(0, left)
        out = img.clone()
        if bottom > top and right > left:
            out.narrow(-2, top, bottom - top).narrow(-1, left, right - left).fill_(self.fill)
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}"
