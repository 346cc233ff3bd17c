"""A record of scalar training metrics against the global step that a checkpoint can carry."""
from __future__ import annotations

import numpy as np


class MetricHistory:
    """(step, value) points per metric name, kept in step order.

    `state_dict`/`load_state_dict` make it survive a resume; `forget_after(step)` drops points
    a resumed run will write again (a run restarted from an earlier checkpoint)."""

    def __init__(self):
        self.points: dict[str, list[tuple[int, float]]] = {}

    def record(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            series = self.points.setdefault(name, [])
            if series and step <= series[-1][0]:
                raise ValueError(f"{name}: step {step} is not after the last recorded step {series[-1][0]}")
            series.append((int(step), float(value)))

    def forget_after(self, step: int) -> None:
        for name in list(self.points):
            self.points[name] = [(s, v) for s, v in self.points[name] if s <= step]
            if not self.points[name]:
                del self.points[name]

    def series(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """name -> (steps, values) arrays, for drawing."""
        return {name: (np.array([s for s, _ in pts]), np.array([v for _, v in pts])) for name, pts in self.points.items()}

    def __len__(self) -> int:
        return sum(len(pts) for pts in self.points.values())

    def state_dict(self) -> dict:
        # Plain lists of numbers: a checkpoint loaded with weights_only=True can hold them.
        return {"points": {name: [[s, v] for s, v in pts] for name, pts in self.points.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.points = {name: [(int(s), float(v)) for s, v in pts] for name, pts in state["points"].items()}
