"""A metric's record over a run's evaluations: best, last and the median of the recent ones."""
from __future__ import annotations

import statistics

# FixMatch (and SimMatch, which follows it) report the median of the test accuracy over the last 20 evaluations.
MEDIAN_WINDOW = 20


def update_best_last(record: dict | None, value: float, step: int) -> dict:
    """A metric's record after one more evaluation: the last value, the best (max) so far (a tie
    keeps the earlier best, as ModelCheckpoint does) and the median of the last MEDIAN_WINDOW
    values (`median_of`: how many there were; fewer than the window early in a run)."""
    record = dict(record or {})
    if "best" not in record or value > record["best"]:
        record["best"], record["best_step"] = value, step
    record["last"], record["last_step"] = value, step
    record["recent"] = (list(record.get("recent", [])) + [value])[-MEDIAN_WINDOW:]
    record["median"], record["median_of"] = statistics.median(record["recent"]), len(record["recent"])
    return record
