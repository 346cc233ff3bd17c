from __future__ import annotations

import torch
from torch import nn

from .distributed import all_gather_cat


class FeatureQueue(nn.Module):
    """A ring of the last `length` items (each of shape `item_shape`), newest first.

    The items of every process are all-gathered before they are enqueued, so all
    processes hold the same queue; `shard(rank, world)` gives a process its disjoint
    part when the queue should be counted once across processes (SwAV's Sinkhorn).
    Everything (items, write position, fill count) is a persistent buffer, so a resumed
    run continues with the same queue. SwAV uses the queue only once it is full.
    """

    def __init__(self, length: int, *item_shape: int):
        super().__init__()
        if length <= 0:
            raise ValueError(f"queue length must be positive, got {length}")
        self.length = length
        self.register_buffer("items", torch.zeros(length, *item_shape))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def full(self) -> bool:
        return int(self.count) >= self.length

    @property
    def fill(self) -> float:
        return min(int(self.count), self.length) / self.length

    @torch.no_grad()
    def push(self, items: torch.Tensor) -> None:
        """Enqueue this step's items (of every process, in rank order; the last ones are newest)."""
        items = all_gather_cat(items.detach()).to(self.items.dtype)[-self.length :]
        slots = (self.position + torch.arange(len(items), device=self.items.device)) % self.length
        self.items[slots] = items
        self.position.copy_((self.position + len(items)) % self.length)
        self.count.add_(len(items))

    def ordered(self) -> torch.Tensor:
        """The stored items, newest first (only the filled part)."""
        filled = min(int(self.count), self.length)
        newest_first = (self.position - 1 - torch.arange(filled, device=self.items.device)) % self.length
        return self.items[newest_first]

    def shard(self, rank: int, world_size: int) -> torch.Tensor:
        """Process `rank`'s share of the stored items (all items when world_size is 1)."""
        if self.length % world_size:
            raise ValueError(f"queue length {self.length} is not divisible by the {world_size} processes; pick a multiple")
        part = self.length // world_size
        return self.items[rank * part : (rank + 1) * part]

    def reset(self) -> None:
        self.items.zero_()
        self.position.zero_()
        self.count.zero_()
