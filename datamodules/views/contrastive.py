"""Views of the self-supervised pretexts: SimCLR pairs and SwAV/DINO multi-crop."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from .compose import View
from .geometry import RandomHorizontalFlip
from .normalize import Normalize


def color_distortion(strength: float, jitter_prob: float = 0.8, gray_prob: float = 0.2, blur_prob: float = 0.0, image_size: int = 32):
    """SimCLR's colour distortion: jitter (0.8s, 0.8s, 0.8s, 0.2s) w.p. 0.8, greyscale w.p. 0.2, optional blur."""
    s = strength
    ops = [
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=jitter_prob),
        v2.RandomGrayscale(p=gray_prob),
    ]
    if blur_prob > 0:
        kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)  # ~10% of the image, odd
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_prob))
    return ops


def _default_blur(info) -> float:
    # SimCLR/SwAV blur on ImageNet-sized images; CIFAR recipes (SCAN, solo-learn) do not blur.
    return 0.0 if info.fixed_size else 0.5


def simclr_view(info, crop_scale=None, strength: float = 0.5, blur_prob: float | None = None) -> View:
    """RandomResizedCrop + flip + colour distortion (SCAN's CIFAR recipe: scale (0.2, 1), s=0.5)."""
    crop_scale = tuple(crop_scale or ((0.2, 1.0) if info.fixed_size else (0.08, 1.0)))
    blur_prob = _default_blur(info) if blur_prob is None else blur_prob
    ops = [v2.RandomResizedCrop(info.image_size, scale=crop_scale, antialias=True), RandomHorizontalFlip()]
    ops += color_distortion(strength, blur_prob=blur_prob, image_size=info.image_size)
    return View(ops, Normalize(info.mean, info.std))


class MultiCrop(torch.nn.Module):
    """`num_global` large crops then `num_local` small crops, as a list of tensors."""

    def __init__(self, global_view: View, local_view: View, num_global: int, num_local: int):
        super().__init__()
        self.global_view, self.local_view = global_view, local_view
        self.num_global, self.num_local = num_global, num_local

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        return [self.global_view(img) for _ in range(self.num_global)] + [
            self.local_view(img) for _ in range(self.num_local)
        ]


def multicrop_view(
    info,
    num_global: int = 2,
    num_local: int = 6,
    global_size: int | None = None,
    local_size: int | None = None,
    global_scale=None,
    local_scale=None,
    strength: float = 1.0,
    blur_prob: float | None = None,
) -> MultiCrop:
    """SwAV multi-crop. Defaults: ImageNet 2x224 (0.14, 1) + 96 px (0.05, 0.14);
    fixed-size data (Suave's CIFAR appendix) global (0.6, 1) + local (0.1, 0.6) at 18/32 of the size."""
    global_size = global_size or info.image_size
    if local_size is None:
        local_size = round(info.image_size * (18 / 32 if info.fixed_size else 96 / 224))
    global_scale = tuple(global_scale or ((0.6, 1.0) if info.fixed_size else (0.14, 1.0)))
    local_scale = tuple(local_scale or ((0.1, 0.6) if info.fixed_size else (0.05, 0.14)))
    blur_prob = _default_blur(info) if blur_prob is None else blur_prob

    def crop(size, scale):
        ops = [v2.RandomResizedCrop(size, scale=scale, antialias=True), RandomHorizontalFlip()]
        ops += color_distortion(strength, blur_prob=blur_prob, image_size=size)
        return View(ops, Normalize(info.mean, info.std))

    return MultiCrop(crop(global_size, global_scale), crop(local_size, local_scale), num_global, num_local)
