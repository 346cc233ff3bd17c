"""Views: what a method asks the datamodule to produce from each image.

A view spec is a name (``"weak"``) or a mapping with a ``name`` and keyword
options (``{"name": "multicrop", "num_local": 4}``). Every view takes a uint8
(C, H, W) image and returns float32 normalised tensor(s).
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Callable

from sslzoo.errors import ConfigError, SSLZooError

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
    raise ConfigError(f"a view spec is a name or a mapping with a 'name' key, got {spec!r}")


def _builder(name: str) -> Callable:
    if name not in VIEW_BUILDERS:
        raise ConfigError(f"unknown view '{name}'; available views: {', '.join(sorted(VIEW_BUILDERS))}")
    return VIEW_BUILDERS[name]


def _as_list(specs) -> list:
    return [specs] if isinstance(specs, (str, Mapping)) else list(specs)


def check_view_specs(specs, where: str) -> None:
    """Refuse unknown view names and option names now (at construction), not when the first
    loader is built; `where` names the option (e.g. "labeled_views")."""
    for spec in _as_list(specs):
        try:
            name, options = _parse(spec)
            builder = _builder(name)
            try:
                inspect.signature(builder).bind(None, **options)
            except TypeError as err:
                raise ConfigError(f"bad options for view '{name}': {err}") from err
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from err


def build_view(spec, info):
    name, options = _parse(spec)
    builder = _builder(name)
    try:
        return builder(info, **options)
    except SSLZooError:
        raise
    except (TypeError, ValueError) as err:  # a view's own check of its options
        raise ConfigError(f"bad options for view '{name}': {err}") from err


def build_views(specs, info) -> MultiView:
    specs = _as_list(specs)
    if not specs:
        raise ConfigError("at least one view is needed")
    return MultiView([build_view(s, info) for s in specs])


__all__ = ["VIEW_BUILDERS", "MultiView", "View", "build_view", "build_views", "check_view_specs", "register_view"]
