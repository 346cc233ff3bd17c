"""Callbacks the CLI adds to every run."""
from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

# Lightning's CombinedLoader (every train/val/test/predict loader of every run) builds torch's
# deprecated `LeafSpec()` in lightning/pytorch/utilities/_pytree.py, which warns (FutureWarning) on torch 2.14.
# Nothing sslzoo can change: silence exactly that warning from that module.
warnings.filterwarnings(
    "ignore",
    message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    category=FutureWarning,
    module=r"lightning\.pytorch\.utilities\._pytree",
)


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


WANDB_CHECKPOINT_KEY = "sslzoo_wandb"


class RememberWandbRun(L.Callback):
    """Store the W&B run id in every checkpoint (`checkpoint["sslzoo_wandb"] = {"id": ...}`), so a run
    resumed from it can continue the same W&B run (`wandb_run_id`), as solo-learn does."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            # `version` is the run's id once the run exists (or the id it was given), without
            # starting a run; only rank 0 has one, and only rank 0 writes the file.
            run_id = logger.version if isinstance(logger, WandbLogger) else None
            if isinstance(run_id, str) and run_id:
                checkpoint[WANDB_CHECKPOINT_KEY] = {"id": run_id, "project": logger.name}
                return


def wandb_run_id(checkpoint: dict) -> str | None:
    """The W&B run id `RememberWandbRun` stored in `checkpoint`, or None (no W&B logger, older checkpoint)."""
    entry = checkpoint.get(WANDB_CHECKPOINT_KEY)
    run_id = entry.get("id") if isinstance(entry, dict) else None
    return run_id if isinstance(run_id, str) and run_id else None
