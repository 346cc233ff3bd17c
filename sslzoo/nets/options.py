"""Which keyword options a backbone builder takes, so that a misspelt `backbone_options` key is
refused by name (with the close match) instead of failing deep in a constructor, or not at all."""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from sslzoo.errors import ConfigError

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def forwards_options(target: Callable, *fixed: str):
    """Mark a builder whose keyword arguments go to `target` with `fixed` already set
    (`wrn_28_2(**options)` builds `WideResNet(depth=28, widen_factor=2, **options)`)."""

    def mark(builder: Callable) -> Callable:
        builder.options_target, builder.fixed_options = target, fixed
        return builder

    return mark


def accepted_options(builder: Callable) -> list[str] | None:
    """The keyword options `builder` takes; None when it takes any (**kwargs it does not declare)."""
    target = getattr(builder, "options_target", None)
    if target is not None:
        accepted = accepted_options(target)
        return None if accepted is None else [name for name in accepted if name not in builder.fixed_options]
    parameters = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in _NAMED]


def check_options(what: str, options: dict, accepted: list[str] | None, owner: str = "") -> None:
    """Refuse a key of `options` (named `what`: "backbone_options", "lars_options") that its
    `owner` does not take, naming the close match and the valid keys; `accepted` None takes any."""
    if accepted is None:
        return
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown {what} {key!r}{f' for {owner}' if owner else ''}; {hint}the valid keys are: {', '.join(accepted)}")
