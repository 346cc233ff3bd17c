"""Valid ranges of numeric arguments, checked where a method sets them: a value outside its
range (a threshold of 1.5, a negative decay) would otherwise train something else, silently."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Interval:
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Interval(0, low_open=True)  # temperatures, epsilons
NON_NEGATIVE = Interval(0)  # loss weights, weight decay, ramp lengths
AT_LEAST_ONE = Interval(1)  # counts and sizes
UNIT = Interval(0, 1)  # probabilities, confidence thresholds, fractions
BELOW_ONE = Interval(0, 1, high_open=True)  # momenta, EMA decays, label smoothing: 1 would never move
UNIT_OPEN = Interval(0, 1, low_open=True, high_open=True)


def check_range(name: str, value, interval: Interval, why: str = ""):
    """`value` when it is None (unset) or inside `interval`, else a ConfigError naming the
    argument, its value and the valid range (and `why`, what the range means)."""
    if value is not None and value not in interval:
        raise ConfigError(f"{name}={value} must be {interval}{f' ({why})' if why else ''}")
    return value


def check_ranges(interval: Interval, **values) -> None:
    """`check_range` for several arguments that share one range."""
    for name, value in values.items():
        check_range(name, value, interval)
