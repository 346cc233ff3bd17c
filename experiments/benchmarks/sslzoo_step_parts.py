"""A Lightning callback that splits sslzoo's training steps into parts (see `step_parts.py`).

    PYTHONPATH=experiments/benchmarks sslzoo fit ... --trainer.callbacks+=sslzoo_step_parts.StepParts \
        --trainer.callbacks.out /tmp/parts.json

Nothing of sslzoo is changed: the
network's forward, torch.autograd.backward, the optimizer's and scheduler's step and the EMA
update are wrapped on the instances of this run.
"""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from step_parts import PartClock  # this folder is on PYTHONPATH (side_by_side_usb.py sets it)


NETWORK_ENTRIES = ("forward", "features_and_logits", "features", "logits_and_projection")


class StepParts(L.Callback):
    """Args: out: JSON file written at the end of fit; skip: leading steps left out of the means;
    profile_step: the step run under torch.profiler (None: none); threads: torch threads at setup."""

    def __init__(self, out: str, skip: int = 3, profile_step: int | None = 5, threads: int | None = None, label: str = ""):
        self.out, self.skip, self.threads, self.label = out, skip, threads, label
        self.clock = PartClock(profile_step)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)

    def on_train_start(self, trainer, pl_module) -> None:
        clock = self.clock
        teacher = getattr(pl_module, "ema", None)
        for network in [pl_module.network] + ([teacher.module] if teacher is not None else []):
            for entry in NETWORK_ENTRIES:  # methods call the network through any of these
                if hasattr(type(network), entry):
                    clock.wrap_method(network, entry, "forward")
        if teacher is not None:
            clock.wrap_method(teacher, "update", "ema")
        clock.patch_backward()
        for optimizer in trainer.optimizers:
            clock.wrap_optimizer(optimizer)
        for config in trainer.lr_scheduler_configs:
            clock.wrap_method(config.scheduler, "step", "scheduler")
        clock.start_run()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.clock.begin_step()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clock.end_step()

    def on_train_end(self, trainer, pl_module) -> None:
        result = {"library": "sslzoo", "label": self.label, "method": type(pl_module).__name__,
                  "torch_threads": torch.get_num_threads(), **self.clock.summary(self.skip), "rows": self.clock.rows}
        Path(self.out).parent.mkdir(parents=True, exist_ok=True)
        Path(self.out).write_text(json.dumps(result, indent=1))
