from __future__ import annotations

from .compose import View
from .geometry import resize_center_crop
from .normalize import Normalize


def eval_view(info) -> View:
    """Normalise only (plus resize + centre crop for variable-size images)."""
    geometry = [] if info.fixed_size else [resize_center_crop(info.image_size)]
    return View(geometry, Normalize(info.mean, info.std))
