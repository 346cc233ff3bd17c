"""FixMatch's weak and strong views (seed_methods_spec.md §1.3)."""
from __future__ import annotations

from .compose import View
from .cutout import Cutout
from .geometry import random_crop_geometry
from .normalize import Normalize
from .randaugment import FixMatchRandAugment


def weak_view(info, hflip: bool | None = None, translate: float = 0.125, crop_scale=(0.08, 1.0), padding: str = "reflect") -> View:
    """Flip (p=0.5, none for SVHN) then translate up to 12.5% with reflect padding (`padding: zero`:
    black, Mean Teacher / LC-MT's RandomCrop) (variable-size images: random resized crop with area
    in `crop_scale`, then flip)."""
    return View(random_crop_geometry(info, hflip, translate, crop_scale, padding), Normalize(info.mean, info.std))


def strong_view(
    info,
    num_ops: int = 2,
    cutout_fraction: float | None = None,
    hflip: bool | None = None,
    translate: float = 0.125,
    cutout: int | None = None,
    randaugment: str = "pytorch_port",
) -> View:
    """Weak + FixMatch RandAugment (2 of 14 ops, random magnitude, p=0.5 each) + Cutout.

    Cutout's side is `cutout` pixels, or `cutout_fraction` (default 0.5) of the image size: 16 px
    on 32 px images either way. Both FixMatch codes use a fixed 16 px on every dataset
    (google-research ``cutout_numpy(size=16)``, kekmodel ``CutoutAbs(img, int(32 * 0.5))``), so
    their STL-10 recipe (96 px) sets ``cutout: 16``; the paper's table says up to 0.5 x size.
    `randaugment` picks the magnitude ranges ("pytorch_port" or "fixmatch_tf", see
    :data:`datamodules.views.randaugment.RANDAUGMENT_VARIANTS`); the default stays kekmodel's so
    that existing recipes keep their augmentation, and the FixMatch paper recipes ask for the TF one.
    """
    if cutout is not None and cutout_fraction is not None:
        raise ValueError("give the strong view's Cutout as `cutout` (pixels) or `cutout_fraction`, not both")
    if cutout is not None and (isinstance(cutout, bool) or not isinstance(cutout, int)):
        raise ValueError(f"the strong view's `cutout` is the square's side in whole pixels (e.g. 16), got {cutout!r}")
    side = cutout if cutout is not None else round((0.5 if cutout_fraction is None else cutout_fraction) * info.image_size)
    augmentations = random_crop_geometry(info, hflip, translate) + [
        FixMatchRandAugment(num_ops=num_ops, variant=randaugment),
        Cutout(side),
    ]
    return View(augmentations, Normalize(info.mean, info.std))
