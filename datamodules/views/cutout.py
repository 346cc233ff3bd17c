"""FixMatch's Cutout (``CutoutAbs``): one grey square at a uniformly random centre."""
from __future__ import annotations

import torch
from torch import Tensor

from .batched import BatchableOp


class Cutout(BatchableOp):
    """Fill the square [x0 - size/2, x0 + size/2) x [y0 - size/2, y0 + size/2), clipped to the
    image, with `fill` in every channel; the centre pixel (x0, y0) is uniform over the image.

    This is google-research/fixmatch's cutout (16 px on 32 px images). kekmodel's
    ``CutoutAbs`` differs slightly: PIL's inclusive rectangle makes it 17 px wide, and
    near the top/left edges it shifts the square instead of clipping it.
    With `random_size=True` the side is drawn per image, uniform in {1, ..., size}
    (SCAN's ``Cutout(random=True)``), before the centre.
    Works on (..., H, W) uint8 or float tensors (batches: (N, ..., H, W)) and returns a new tensor.
    """

    param_count = 2  # side, centre as the flat index y0 * W + x0

    def __init__(self, size: int, fill: float = 127, random_size: bool = False):
        super().__init__()
        if size < 0 or (random_size and size < 1):
            raise ValueError(f"cutout size must be >= 0 (>= 1 with random_size), got {size}")
        self.size = size
        self.fill = fill
        self.random_size = random_size

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> tuple[float, float]:
        h, w = shape[-2:]
        size = int(torch.randint(1, self.size + 1, (), generator=generator)) if self.random_size else self.size
        centre = int(torch.randint(h * w, (), generator=generator))
        return float(size), float(centre)

    def apply(self, img: Tensor, params) -> Tensor:
        size, centre = (int(v) for v in params)
        h, w = img.shape[-2:]
        y0, x0 = divmod(centre, w)
        top, left = y0 - size // 2, x0 - size // 2
        bottom, right = min(h, top + size), min(w, left + size)
        top, left = max(0, top), max(0, left)
        out = img.clone()
        if bottom > top and right > left:
            out.narrow(-2, top, bottom - top).narrow(-1, left, right - left).fill_(self.fill)
        return out

    def apply_batch(self, imgs: Tensor, params: Tensor) -> Tensor:
        h, w = imgs.shape[-2:]
        size, centre = params.to(imgs.device, torch.long).unbind(1)
        top, left = centre.div(w, rounding_mode="floor") - size // 2, centre.remainder(w) - size // 2

        def covered(start: Tensor, length: int) -> Tensor:  # (N, length): inside [start, start + size)
            index = torch.arange(length, device=imgs.device)
            return (index >= start[:, None]) & (index < (start + size)[:, None])

        square = covered(top, h)[:, :, None] & covered(left, w)[:, None, :]
        return imgs.masked_fill(square.view(-1, *(1,) * (imgs.dim() - 3), h, w), self.fill)

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(img, self.draw(tuple(img.shape), generator))

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}" + (", random_size=True" if self.random_size else "")
