"""Pre-emption and time limits: a signal becomes a saved checkpoint, a stop and a non-zero exit."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from .last_checkpoint import LastCheckpoint


def slurm_job_id() -> str | None:
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class Preemption(Checkpoint):
    """On any of `signals` (default SIGTERM, what `scancel`, Kubernetes and most schedulers send,
    and SIGUSR1, what `#SBATCH --signal=SIGUSR1@300` sends before the time limit), every process
    finishes its current step, last.ckpt is written (through `LastCheckpoint`), and training stops.
    `received` then names the signal; the `sslzoo` command exits with 128 + its number, after
    `scontrol requeue` of the job when under SLURM and `requeue` is on.

    The handler only records the signal (no collectives inside a signal handler): the processes
    agree on it at the end of each step, so a signal delivered to one rank stops all of them at the
    same step. Lightning's own SIGTERM handling (stop without saving, exit status 0) is replaced
    for the duration of training.
    """

    def __init__(self, signals: list[str] | None = None, requeue: bool = True):
        names = ["SIGTERM", "SIGUSR1"] if signals is None else signals
        unknown = [name for name in names if not isinstance(getattr(signal, name, None), signal.Signals)]
        if unknown:
            raise ValueError(f"unknown signal name(s) {unknown}; use names such as SIGTERM, SIGUSR1, SIGUSR2")
        self.signals = [getattr(signal, name) for name in names]
        self.requeue = requeue
        self.received: signal.Signals | None = None
        self._pending: signal.Signals | None = None
        self._installed = False

    # ---- signals -----------------------------------------------------------
    def _install(self, trainer: L.Trainer) -> None:
        # After Lightning registers its handlers (which happens after on_fit_start).
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._installed = True
        self._pending, self.received = None, None
        launcher = trainer.strategy.launcher

        def handle(signum, frame):
            first = self._pending is None
            self._pending = signal.Signals(signum)
            if first and launcher is not None and hasattr(launcher, "kill"):
                launcher.kill(signum)  # processes this one started (Lightning's subprocess launcher)

        for signum in self.signals:
            signal.signal(signum, handle)

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self._install(trainer)

    def on_train_start(self, trainer, pl_module) -> None:
        self._install(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._installed = False  # Lightning restores the handlers it found before fit

    # ---- stopping ----------------------------------------------------------
    def _agreed_signal(self, trainer: L.Trainer) -> signal.Signals | None:
        local = self._pending
        if local is None and trainer.received_sigterm:  # arrived before our handler was installed
            local = signal.SIGTERM
        if trainer.world_size == 1:
            return local
        code = torch.tensor([int(local) if local is not None else 0], device=trainer.strategy.root_device)
        code = trainer.strategy.reduce(code, reduce_op="max")
        return signal.Signals(int(code.item())) if int(code.item()) else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.received is not None:
            return
        received = self._agreed_signal(trainer)
        if received is None:
            return
        self.received = received
        saved = self._last_checkpoint(trainer).save(trainer, final=True)
        trainer.should_stop = True
        rank_zero_warn(f"sslzoo: received {received.name} at step {trainer.global_step}: saved {saved}, stopping")

    @staticmethod
    def _last_checkpoint(trainer: L.Trainer) -> LastCheckpoint:
        for callback in trainer.callbacks:
            if isinstance(callback, LastCheckpoint):
                return callback
        raise RuntimeError("Preemption needs a LastCheckpoint callback to save the run; add sslzoo.checkpointing.LastCheckpoint")

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._last_checkpoint(trainer)

    # ---- after fit (the CLI calls this) --------------------------------------
    @property
    def exit_code(self) -> int:
        return 128 + int(self.received) if self.received is not None else 0

    def finish(self, trainer: L.Trainer) -> str:
        """Requeue under SLURM (rank 0) and return the message the command prints before exiting."""
        job = slurm_job_id()
        requeued = ""
        if self.requeue and job is not None and trainer.is_global_zero and re.fullmatch(r"[0-9_]+", job):
            try:
                result = subprocess.call(["scontrol", "requeue", job])
            except FileNotFoundError:
                result = "scontrol not found"
            requeued = f"; SLURM job {job} requeued" if result == 0 else f"; `scontrol requeue {job}` failed ({result})"
        message = (
            f"sslzoo: stopped by {self.received.name} at step {trainer.global_step}; last.ckpt holds this state{requeued}. "
            "Resume with the same command and --ckpt_path last"
        )
        rank_zero_info(message)
        return message
