"""SCAN's strong view ("ours" in wvangansbeke/Unsupervised-Classification)."""
from __future__ import annotations

import torch

from .compose import View
from .cutout import Cutout
from .geometry import random_crop_geometry
from .normalize import Normalize
from .randaugment import FixMatchRandAugment


def scan_strong_view(
    info, num_ops: int = 4, cutout_max: int | None = None, hflip: bool | None = None, crop_scale=(0.08, 1.0), fill: int = 0
) -> View:
    """Flip, `num_ops` RandAugment ops that are always applied, normalise, then Cutout.

    SCAN's pipeline is RandomHorizontalFlip, RandomCrop(crop_size), ``Augment(4)``,
    ToTensor, Normalize, ``Cutout(n_holes=1, length, random=True)``:

    - RandomCrop without padding at the image size is a no-op on CIFAR/STL-10, so
      fixed-size images are only flipped. Variable-size images take the weak view's
      random resized crop (area in `crop_scale`; SCAN resizes ImageNet to 256 and
      crops 224 at random).
    - ``Augment(4)`` draws 4 of the 14 ops with replacement, each applied with a
      random value and sign. Here :class:`FixMatchRandAugment` with
      ``apply_prob=1`` does that with FixMatch's integer levels 1..9, which
      discretise SCAN's continuous ranges; FixMatch's shear and translate reach
      0.27 where SCAN's stop at 0.1, the other levels span most of SCAN's ranges
      (e.g. rotations of 3..27 degrees for SCAN's 0..30). Geometric
      ops fill with `fill` (0: black, PIL's default, as SCAN).
    - Cutout: one square of random side in {1, ..., `cutout_max`} (default half the
      image size: 16 on 32 px; SCAN uses 32 on STL-10 and 75 on ImageNet), set to 0
      after normalisation, i.e. the dataset mean colour, as SCAN's mask does. SCAN's
      square spans [c - L//2, c + L//2), so its side is rounded down to even.
    """
    side = info.image_size // 2 if cutout_max is None else int(cutout_max)
    if side < 1:
        raise ValueError(f"cutout_max must be >= 1 (or null for half the image size), got {cutout_max}")
    augmentations = random_crop_geometry(info, hflip, translate=0.0, crop_scale=crop_scale) + [
        FixMatchRandAugment(num_ops=num_ops, apply_prob=1.0, fill=fill)
    ]
    normalize_then_cutout = torch.nn.Sequential(Normalize(info.mean, info.std), Cutout(side, fill=0.0, random_size=True))
    return View(augmentations, normalize_then_cutout)
