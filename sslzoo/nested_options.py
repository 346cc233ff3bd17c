"""Option dicts (`backbone_options`, `compile_options`, `lars_options`, ...) merge key by key
across `--config` files, as they already do for dotted flags (`--model.backbone_options.depth 16`).

jsonargparse replaces a dict-typed value wholesale when a later config file sets it, so a second
config that sets only `backbone_options: {widen_factor: 8}` would silently drop the first one's
`depth` and build another network. jsonargparse has no setting for this, so the config-file
merge it uses is wrapped once, for values whose key ends in `_options`."""
from __future__ import annotations

from jsonargparse import _actions

NESTED_SUFFIX = "_options"


def merged_options(earlier: dict, later: dict) -> dict:
    """`later` over `earlier`, recursively for nested dicts."""
    merged = dict(earlier)
    for key, value in later.items():
        merged[key] = merged_options(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _merge_keeping_options(parser, source, target):
    merged = _plain_merge(parser, source, target)
    for key, value in source.items():
        earlier = target.get(key) if key in target else None
        if key.rsplit(".", 1)[-1].endswith(NESTED_SUFFIX) and isinstance(value, dict) and isinstance(earlier, dict):
            merged[key] = merged_options(earlier, value)
    return merged


_plain_merge = _actions.merge_config


def merge_options_across_configs() -> None:
    """Install the key-by-key merge (idempotent)."""
    if _actions.merge_config is not _merge_keeping_options:
        _actions.merge_config = _merge_keeping_options
