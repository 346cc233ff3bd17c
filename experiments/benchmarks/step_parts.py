"""Where a training step's time goes, measured the same way in sslzoo and in USB (semilearn).

Imports only torch and the standard library, so the USB side (`usb_step_parts.py`, run with
USB's own virtualenv) and the sslzoo side (`sslzoo_step_parts.py`, a Lightning callback) share it.

Per step, wall-clock seconds of:
  forward     the trained network's forward calls (and a teacher's, where it is a separate module)
  backward    torch.autograd.backward
  optimizer   optimizer.step without the closure Lightning passes it (which runs forward and backward)
  scheduler   lr_scheduler.step
  ema         the EMA / teacher update (USB: its EMAHook and apply_shadow/restore)
  other       the rest of the step: losses, pseudo-labels, logging, hooks, the training loop
  data        the wait for the next batch before the step (DataLoader fetch)
Evaluation and checkpoint saving inside a step (USB runs them from its hooks) are timed as
"excluded" and left out of the step, as `../shared/peer_usb/run_usb.py` leaves them out.
One step (`profile_step`) also runs under torch.profiler, and its operators are summed into
categories (convolution, batch norm and activation forward/backward, optimizer kernels, ...);
that step is left out of the means.
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch

TIMED_PARTS = ("forward", "backward", "optimizer", "scheduler", "ema")

# Operator name -> category of the profiled step (first match wins; names are lower-cased).
OP_CATEGORIES = (
    ("convolution_backward", "conv backward"),
    ("conv", "conv forward"),
    ("batch_norm_backward", "batch norm backward"),
    ("batch_norm", "batch norm forward"),
    ("leaky_relu_backward", "activation backward"),
    ("relu", "activation forward"),
    ("mish", "activation forward"),
    ("_foreach", "optimizer / EMA foreach kernels"),
    ("lerp", "optimizer / EMA foreach kernels"),
    ("addmm", "linear layers"),
    ("mm", "linear layers"),
    ("copy_", "copies / layout"),
    ("contiguous", "copies / layout"),
    ("cat", "copies / layout"),
    ("item", "host syncs (.item)"),
    ("_local_scalar_dense", "host syncs (.item)"),
)


class PartClock:
    """Accumulates per-step part times; `begin_step`/`end_step` bracket one training step."""

    def __init__(self, profile_step: int | None = None):
        self.rows: list[dict] = []
        self.profile_step = profile_step
        self.profile_categories: dict | None = None
        self._current: dict = defaultdict(float)
        self._prev_end: float | None = None
        self._begin: float | None = None
        self._profiler = None
        self._depth = 0  # nested timed calls (a forward inside a closure) count once

    # ---- steps -------------------------------------------------------------------------
    def start_run(self) -> None:
        self._prev_end = time.perf_counter()

    def begin_step(self) -> None:
        now = time.perf_counter()
        self._current = defaultdict(float)
        self._current["data"] = now - (self._prev_end if self._prev_end is not None else now)
        if self.profile_step is not None and len(self.rows) + 1 == self.profile_step:
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._profiler.__enter__()
        self._begin = time.perf_counter()

    def end_step(self) -> None:
        now = time.perf_counter()
        if self._profiler is not None:
            self._profiler.__exit__(None, None, None)
            self.profile_categories = op_categories(self._profiler)
            self._profiler = None
            profiled = True
        else:
            profiled = False
        row = dict(self._current)
        row["compute"] = now - self._begin - row.get("excluded", 0.0)
        row["other"] = row["compute"] - sum(row.get(p, 0.0) for p in TIMED_PARTS)
        row["step"] = row["compute"] + row["data"]
        row["profiled"] = profiled
        self.rows.append(row)
        self._prev_end = time.perf_counter()

    # ---- timed calls -------------------------------------------------------------------
    def add(self, part: str, seconds: float) -> None:
        self._current[part] += seconds

    def timed(self, function, part: str):
        """`function` wrapped so that its wall time goes to `part` (outermost call only)."""

        def wrapper(*args, **kwargs):
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                self.add(part, time.perf_counter() - start)

        return wrapper

    def wrap_method(self, obj, name: str, part: str) -> None:
        """Time `obj.name` by giving `obj` a subclass whose method is timed: no instance attribute
        is added, so `state_dict()`s that copy `__dict__` (lr schedulers) still pickle."""
        inner = getattr(type(obj), name)
        timed = self.timed(lambda this, *args, **kwargs: inner(this, *args, **kwargs), part)
        obj.__class__ = type(type(obj).__name__, (type(obj),), {name: timed})

    def wrap_optimizer(self, optimizer) -> None:
        """optimizer.step's own time: the closure (forward + backward under Lightning) is not counted."""
        inner_step = optimizer.step
        clock = self

        def step(closure=None, *args, **kwargs):
            closure_s = [0.0]

            def timed_closure():
                start = time.perf_counter()
                try:
                    return closure()
                finally:
                    closure_s[0] += time.perf_counter() - start

            start = time.perf_counter()
            try:
                return inner_step(timed_closure if closure is not None else None, *args, **kwargs)
            finally:
                clock.add("optimizer", time.perf_counter() - start - closure_s[0])

        optimizer.step = step  # optimizers' state_dict() does not copy __dict__

    def patch_backward(self) -> None:
        """Time every torch.autograd.backward (Tensor.backward looks it up at call time)."""
        torch.autograd.backward = self.timed(torch.autograd.backward, "backward")

    # ---- results -----------------------------------------------------------------------
    def summary(self, skip: int = 3) -> dict:
        """Means over steps skip+1..N (the profiled step left out), in seconds per step."""
        steady = [r for r in self.rows[skip:] if not r["profiled"]]
        parts = ("data",) + TIMED_PARTS + ("other",)
        means = {p: statistics.fmean(r.get(p, 0.0) for r in steady) if steady else None for p in parts}
        step = statistics.fmean(r["step"] for r in steady) if steady else None
        return {
            "steps_timed": len(steady),
            "s_per_step": step,
            "parts_s_per_step": means,
            "parts_share": {p: (v / step if step and v is not None else None) for p, v in means.items()},
            "profiled_step_operator_categories_s": self.profile_categories,
        }


def op_categories(profiler) -> dict:
    """Self CPU seconds of the profiled step per operator category (`OP_CATEGORIES`), largest first."""
    totals: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        name = event.key.lower()
        if not name.startswith("aten::"):
            continue
        category = next((c for key, c in OP_CATEGORIES if key in name), "other operators")
        totals[category] += event.self_cpu_time_total / 1e6
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))
