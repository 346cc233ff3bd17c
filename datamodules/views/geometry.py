"""Geometric augmentations shared by several views."""
from __future__ import annotations

import torch
from torchvision.transforms import v2


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    # numpy/torch 'reflect' padding: the edge pixel is not repeated.
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


class RandomTranslate(torch.nn.Module):
    """FixMatch's `augment_shift`: reflect-pad by `fraction` of the size, then random crop.

    Implemented as one gather per axis (no padded copy of the image).
    """

    def __init__(self, fraction: float = 0.125):
        super().__init__()
        self.fraction = fraction

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        pad_h, pad_w = round(self.fraction * h), round(self.fraction * w)
        dy = int(torch.randint(-pad_h, pad_h + 1, ()))
        dx = int(torch.randint(-pad_w, pad_w + 1, ()))
        rows = _reflect(torch.arange(h) + dy, h)
        cols = _reflect(torch.arange(w) + dx, w)
        return img[..., rows, :][..., cols]


class RandomHorizontalFlip(torch.nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.flip(-1) if float(torch.rand(())) < self.p else img


def resize_center_crop(size: int, crop_fraction: float = 0.875) -> v2.Compose:
    """Standard evaluation geometry for variable-size images (resize 256, crop 224)."""
    return v2.Compose([v2.Resize(round(size / crop_fraction), antialias=True), v2.CenterCrop(size)])


def random_crop_geometry(info, hflip: bool | None = None, translate: float = 0.125) -> list[torch.nn.Module]:
    """The 'weak' geometry: flip + translate for fixed-size data, resized crop + flip otherwise."""
    flip = info.hflip if hflip is None else hflip
    ops: list[torch.nn.Module] = []
    if not info.fixed_size:
        ops.append(v2.RandomResizedCrop(info.image_size, antialias=True))
    if flip:
        ops.append(RandomHorizontalFlip())
    if info.fixed_size and translate > 0:
        ops.append(RandomTranslate(translate))
    return ops
