from __future__ import annotations

import signal
from typing import Callable

from torch.utils.data import DataLoader

from .samplers import StreamSampler


STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2")


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers ignore the stop signals a scheduler sends to every process of a job
    (SLURM, `timeout`, Kubernetes): the training process saves and stops (sslzoo.checkpointing.
    Preemption) and its workers end with it. A worker killed by the signal would instead crash the
    training process ("DataLoader worker ... is killed by signal") before it could save."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


class ResumableLoader(DataLoader):
    """A training DataLoader over a `StreamSampler` that Lightning checkpoints.

    Lightning prefetches batches, so the number of batches this loader has
    yielded is not the number the model consumed; `batches_done` asks the
    trainer instead. On load, the sampler skips the consumed part of the epoch.
    """

    def __init__(self, *args, batches_done: Callable[[], int], **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, StreamSampler):
            raise TypeError("ResumableLoader needs a StreamSampler")
        self._batches_done = batches_done

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches_done": int(self._batches_done())}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume_at(state["epoch"], state["batches_done"] * self.batch_size)
