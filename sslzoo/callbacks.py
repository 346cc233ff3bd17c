"""Callbacks the CLI adds to every run."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def checkpoint_dir(default_root_dir: str | None) -> str:
    """Checkpoints live in a fixed folder under the run directory, so `--ckpt_path last`
    finds the previous run's last.ckpt (logger versions would hide it)."""
    return str(Path(default_root_dir or ".") / "checkpoints")


def run_directory(trainer: L.Trainer) -> Path:
    """Where a run's own files go (run_summary.json, pictures/, test_confusion.json): trainer.log_dir
    when it is a per-version folder (TensorBoard, CSV); otherwise the run folder (W&B's log_dir is
    its save_dir, "." by default, shared by every run). Call on every rank: log_dir broadcasts."""
    log_dir = trainer.log_dir
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is not None and not isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return Path(trainer.default_root_dir)
    return Path(log_dir or trainer.default_root_dir)


class LogCheckpointPaths(L.Callback):
    """Record where the best and last checkpoints are, in every logger (W&B summary included)."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        paths = {}
        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint):
                paths["checkpoint/best"] = callback.best_model_path
            if callback.__class__.__name__ == "LastCheckpoint":
                paths["checkpoint/last"] = callback.last_model_path
        if not paths:
            return
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            summary = getattr(experiment, "summary", None)
            if summary is not None and hasattr(summary, "update"):  # wandb run
                summary.update(paths)
            else:
                logger.log_hyperparams(paths)
