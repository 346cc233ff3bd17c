"""Faults injected into `sslzoo` runs started as subprocesses by tests/test_checkpointing.py
(importable there through PYTHONPATH=tests)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.plugins.io import TorchCheckpointIO


class SignalAtStep(L.Callback):
    """Send `signal_name` after optimizer step `step` to this process's group (the run and its
    loader workers, as `timeout` and `scancel` do; start the run in its own session), or with
    `group` false to this process alone (what `#SBATCH --signal` does with a job step of no workers)."""

    def __init__(self, step: int, signal_name: str = "SIGTERM", group: bool = True):
        self.step, self.signum, self.group = step, getattr(signal, signal_name), group

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.killpg(os.getpgrp(), self.signum) if self.group else os.kill(os.getpid(), self.signum)


class SlowCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints in place and slowly, after the first `fast_writes`: half the bytes, then a
    marker file that says the write is under way, then a long sleep (the test kills the process)."""

    def __init__(self, marker: str, fast_writes: int = 1):
        super().__init__()
        self.marker, self.fast_writes, self.writes = Path(marker), fast_writes, 0

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        self.writes += 1
        if self.writes <= self.fast_writes:
            return super().save_checkpoint(checkpoint, path, storage_options)
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with open(path, "wb") as f:
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            self.marker.write_text(str(path))
            time.sleep(600)
            f.write(buffer.getvalue()[len(buffer.getvalue()) // 2 :])
