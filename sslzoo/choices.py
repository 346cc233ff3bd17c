"""Choice arguments: a `typing.Literal` type, so the CLI refuses a wrong value at parse time and
lists the choices, and the same check for Python callers, defined once."""
from __future__ import annotations

from typing import Literal, get_args, get_origin

from .errors import ConfigError


def choices_of(kind) -> tuple:
    """The allowed values of a Literal type (or of a tuple of values)."""
    return get_args(kind) if get_origin(kind) is Literal else tuple(kind)


def check_choice(name: str, value, kind):
    """`value` when it is one of `kind`'s values, else a ConfigError that lists them."""
    allowed = choices_of(kind)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value
