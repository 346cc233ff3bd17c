"""FixMatch's weak and strong views (seed_methods_spec.md §1.3)."""
from __future__ import annotations

from .compose import View
from .cutout import Cutout
from .geometry import random_crop_geometry
from .normalize import Normalize
from .randaugment import FixMatchRandAugment


def weak_view(info, hflip: bool | None = None, translate: float = 0.125, crop_scale=(0.08, 1.0)) -> View:
    """Flip (p=0.5, none for SVHN) then translate up to 12.5% with reflect padding
    (variable-size images: random resized crop with area in `crop_scale`, then flip)."""
    return View(random_crop_geometry(info, hflip, translate, crop_scale), Normalize(info.mean, info.std))


def strong_view(info, num_ops: int = 2, cutout_fraction: float = 0.5, hflip: bool | None = None, translate: float = 0.125) -> View:
    """Weak + FixMatch RandAugment (2 of 14 ops, random magnitude, p=0.5 each) + Cutout (16 px on 32 px)."""
    augmentations = random_crop_geometry(info, hflip, translate) + [
        FixMatchRandAugment(num_ops=num_ops),
        Cutout(round(cutout_fraction * info.image_size)),
    ]
    return View(augmentations, Normalize(info.mean, info.std))
