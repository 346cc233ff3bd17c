"""What the `sslzoo` command adds to every run, as plain Python for `L.Trainer(...)` users:

    trainer = L.Trainer(max_steps=..., **trainer_options("runs/mine"))

gives the same best/last checkpoints (atomic writes), pre-emption handling, pictures, run summary
and source version as `sslzoo fit --trainer.default_root_dir runs/mine`."""
from __future__ import annotations

import lightning as L

from .callbacks import LogCheckpointPaths, RememberWandbRun, checkpoint_dir
from .checkpointing import AtomicCheckpointIO, BestCheckpoint, LastCheckpoint, Preemption
from .pictures import ValidationPictures
from .report.run_summary import RunSummary
from .source_version import LogSourceVersion

# The best checkpoint by the method's own metric (`checkpoint_metric`), named by epoch and step.
BEST_CHECKPOINT_DEFAULTS = {"monitor": "auto", "mode": "max", "filename": "best-{epoch}-{step}", "auto_insert_metric_name": False}


def run_record_callbacks() -> list[L.Callback]:
    """Callbacks that record a run (fresh instances; the CLI adds these to every run)."""
    return [LogCheckpointPaths(), RunSummary(), LogSourceVersion(), RememberWandbRun()]


def standard_callbacks(default_root_dir: str) -> list[L.Callback]:
    """Every callback the CLI gives a run in `default_root_dir`, with the CLI's defaults."""
    checkpoints = checkpoint_dir(default_root_dir)
    return [
        BestCheckpoint(dirpath=checkpoints, **BEST_CHECKPOINT_DEFAULTS),
        LastCheckpoint(dirpath=checkpoints),
        Preemption(),
        ValidationPictures(),
        *run_record_callbacks(),
    ]


def trainer_options(default_root_dir: str) -> dict:
    """`L.Trainer` keyword arguments for a run in `default_root_dir` as the CLI sets it up."""
    return {"default_root_dir": default_root_dir, "callbacks": standard_callbacks(default_root_dir), "plugins": [AtomicCheckpointIO()]}
