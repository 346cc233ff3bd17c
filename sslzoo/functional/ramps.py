"""Ramp-up weights of consistency losses, as functions of training progress."""
from __future__ import annotations

import math


def sigmoid_rampup(current: float, length: float) -> float:
    """exp(-5 (1 - x)^2) with x = current / length clipped to [0, 1] (Laine & Aila; Mean Teacher)."""
    if length <= 0:
        return 1.0
    x = min(max(current / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - x) ** 2)


def linear_rampup(current: float, length: float) -> float:
    return 1.0 if length <= 0 else min(max(current / length, 0.0), 1.0)
