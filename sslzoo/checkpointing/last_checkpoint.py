"""last.ckpt: always the newest state of a run."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from .atomic_io import CheckpointWriteError, fsync_directory, fsync_file

LAST_NAME = "last.ckpt"
PREVIOUS_NAME = "last-previous.ckpt"  # the last.ckpt that the newest one replaced
STAGED_NAME = "last-staged.ckpt"  # a new last.ckpt being written


class LastCheckpoint(Checkpoint):
    """Keep `<dirpath>/last.ckpt` equal to the newest state of the run.

    It is written after every validation, every `every_n_train_steps` optimizer steps, at the end
    of fit (whatever stopped it: max_steps mid-epoch, max_epochs, early stopping) and by
    `Preemption` on a signal. Each new state is written beside it, fsync'ed, and renamed in; the
    file it replaces stays as last-previous.ckpt, so a kill at any moment leaves a complete
    checkpoint. A periodic write that fails (full disk) warns and training goes on; a failure of
    the final write is an error, since the run's end state would be lost.

    A `Checkpoint` subclass, so Lightning runs it after the other callbacks (their state is current).

    Args:
        dirpath: the run's checkpoint folder (the CLI links it to `<default_root_dir>/checkpoints`).
        every_n_train_steps: also write every this many optimizer steps (None: only at the events above).
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int | None = 1000):
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or null, got {every_n_train_steps}")
        self.dirpath, self.every_n_train_steps = dirpath, every_n_train_steps
        self._saved_step: int | None = None

    def directory(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoints"

    @property
    def last_model_path(self) -> str:
        return str(Path(self.dirpath or ".") / LAST_NAME)

    def on_train_start(self, trainer, pl_module) -> None:
        self._saved_step = trainer.global_step if trainer.ckpt_path else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self.every_n_train_steps
        if every and trainer.global_step % every == 0 and trainer.global_step > 0:
            self.save(trainer, final=False)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.save(trainer, final=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, final=True)

    def save(self, trainer: L.Trainer, final: bool) -> Path | None:
        """Write the current state as last.ckpt (all ranks call this; rank 0 writes)."""
        directory = self.directory(trainer)
        last = directory / LAST_NAME
        if self._saved_step == trainer.global_step and last.exists():
            return last
        staged = directory / STAGED_NAME
        error = None
        try:
            trainer.save_checkpoint(staged, weights_only=False)  # the full state: a resume needs it
        except (OSError, RuntimeError) as err:  # rank 0's write failed before the barrier the others wait at
            error = f"{err}"
            trainer.strategy.barrier("sslzoo.last_checkpoint.failed")
        if error is None and trainer.is_global_zero:
            error = self._promote(staged, last, directory / PREVIOUS_NAME)
        error = trainer.strategy.broadcast(error, src=0)
        if error is not None:
            if final:
                raise CheckpointWriteError(f"the final state could not be saved: {error}")
            rank_zero_warn(f"sslzoo: last.ckpt NOT updated at step {trainer.global_step}: {error}; training goes on")
            return None
        self._saved_step = trainer.global_step
        rank_zero_info(f"sslzoo: saved {last} (step {trainer.global_step})")
        return last

    @staticmethod
    def _promote(staged: Path, last: Path, previous: Path) -> str | None:
        """staged -> last.ckpt, keeping the replaced one as last-previous.ckpt."""
        try:
            fsync_file(staged)
            if last.exists():
                os.replace(last, previous)
            os.replace(staged, last)
            fsync_directory(last.parent)
        except OSError as err:
            return f"could not move {staged} to {last} ({err})"
        return None
