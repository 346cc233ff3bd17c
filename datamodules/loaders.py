from __future__ import annotations

from typing import Callable

from torch.utils.data import DataLoader

from .samplers import StreamSampler


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
