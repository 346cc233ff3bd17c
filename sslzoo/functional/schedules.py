"""Learning-rate multipliers as functions of the optimizer step (for LambdaLR)."""
from __future__ import annotations

import math


def fixmatch_cosine(step: int, total_steps: int) -> float:
    """FixMatch: lr * cos(7 pi k / (16 K))."""
    return math.cos(7.0 * math.pi * step / (16.0 * max(1, total_steps)))


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.0) -> float:
    """Linear warm-up from 0, then half-cosine down to `final_fraction` of the base lr."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(progress, 1.0)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def constant(step: int, total_steps: int) -> float:
    return 1.0


def linear_decay(step: int, total_steps: int, decay_start: float = 0.0) -> float:
    """Constant until `decay_start` (a fraction of training), then linear to 0 (LC-MT's `linear_decay`)."""
    start = decay_start * total_steps
    if step <= start:
        return 1.0
    return max(0.0, (total_steps - step) / max(1.0, total_steps - start))


SCHEDULES = {"fixmatch_cosine": fixmatch_cosine, "warmup_cosine": warmup_cosine, "constant": constant, "linear_decay": linear_decay}


def cosine_between(step: int, total_steps: int, start: float, end: float) -> float:
    """Half-cosine from `start` (step 0) to `end` (step total_steps and after): DINO's teacher
    momentum and weight-decay schedules."""
    progress = min(step, total_steps) / max(1, total_steps)
    return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2
