"""Views: what a method asks the datamodule to produce from each image.

A view spec is a name (``"weak"``) or a mapping with a ``name`` and keyword
options (``{"name": "multicrop", "num_local": 4}``). Every view takes a uint8
(C, H, W) image and returns float32 normalised tensor(s).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from .boosted import clustering_view
from .compose import MultiView, View
from .contrastive import multicrop_view, simclr_view
from .ctaugment import cta_probe_view, ctaugment_view
from .evaluation import eval_view
from .fixmatch import strong_view, weak_view
from .rotation import rotation_view
from .scan import scan_strong_view

VIEW_BUILDERS: dict[str, Callable] = {
    "weak": weak_view,
    "strong": strong_view,
    "simclr": simclr_view,
    "multicrop": multicrop_view,
    "rotation": rotation_view,
    "scan_strong": scan_strong_view,
    "eval": eval_view,
    "clustering": clustering_view,
}
VIEW_BUILDERS.update(ctaugment=ctaugment_view, cta_probe=cta_probe_view)  # FixMatch CTA: strong view and labeled probe


def register_view(name: str, builder: Callable) -> None:
    """Make a new view name available to every datamodule (builder(info, **options))."""
    VIEW_BUILDERS[name] = builder


def _parse(spec) -> tuple[str, dict]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and "name" in spec:
        options = dict(spec)
        return options.pop("name"), options
    raise ValueError(f"a view spec is a name or a mapping with a 'name' key, got {spec!r}")


def build_view(spec, info):
    name, options = _parse(spec)
    if name not in VIEW_BUILDERS:
        raise ValueError(f"unknown view '{name}'; available views: {', '.join(sorted(VIEW_BUILDERS))}")
    try:
        return VIEW_BUILDERS[name](info, **options)
    except TypeError as err:
        raise ValueError(f"bad options for view '{name}': {err}") from err


def build_views(specs, info) -> MultiView:
    if isinstance(specs, (str, Mapping)):
        specs = [specs]
    if not specs:
        raise ValueError("at least one view is needed")
    return MultiView([build_view(s, info) for s in specs])


__all__ = ["VIEW_BUILDERS", "MultiView", "View", "build_view", "build_views", "register_view"]
