"""Deterministic, rank-aware samplers.

Both subclass `DistributedSampler` so Lightning leaves them in place instead of
wrapping them; they shard by the rank and world size given explicitly.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from sslzoo.errors import DataError

from .splits import _splitmix64


def _pass_seed(seed: int, pass_index: int) -> int:
    return (seed * 1_000_003 + pass_index * 7919 + 12345) % (2**62)


class StreamSampler(DistributedSampler):
    """An endless stream of seeded permutations of range(num_items), cut into epochs.

    Epoch e takes stream positions [e*T, (e+1)*T) with T = samples_per_rank *
    world_size, and rank r takes every world_size-th of them starting at r, so
    within an epoch ranks see disjoint items (while T <= num_items). A small set
    (the labeled stream) is simply cycled through successive permutations.
    The order is a function of (seed, epoch, rank, world_size) only.

    Each item comes with its own augmentation seed, a hash of (seed, stream
    position): an image's augmentation does not depend on the number of
    workers or processes, and a resumed run sees exactly the same pixels.
    `resume_at(epoch, items)` skips the first items of that epoch once.
    """

    def __init__(self, num_items: int, samples_per_rank: int, seed: int, rank: int = 0, world_size: int = 1):
        if num_items <= 0:
            raise DataError(
                "cannot sample from an empty set: a training stream (labeled or unlabeled) has no images; "
                "check num_labels, num_val and include_labeled_in_unlabeled"
            )
        self.num_items = num_items
        self.num_samples = samples_per_rank
        self.seed = seed
        self.rank = rank
        self.num_replicas = world_size
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, items_done: int) -> None:
        self._resume = (epoch, items_done)
        if items_done < self.num_samples:
            # Inside that epoch: be in it now. A loader with workers iterates its sampler as soon as
            # its iterator exists (prefetching), which on resume is before Lightning sets the epoch.
            self.set_epoch(epoch)

    def _permutation(self, pass_index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(_pass_seed(self.seed, pass_index))
        return torch.randperm(self.num_items, generator=generator)

    def _epoch_start(self) -> int:
        return self.epoch * self.num_samples * self.num_replicas

    def epoch_indices(self) -> torch.Tensor:
        """The whole epoch's items for all ranks, in stream order."""
        total = self.num_samples * self.num_replicas
        start = self._epoch_start()
        first_pass, last_pass = start // self.num_items, (start + total - 1) // self.num_items
        stream = torch.cat([self._permutation(p) for p in range(first_pass, last_pass + 1)])
        offset = start - first_pass * self.num_items
        return stream[offset : offset + total]

    def item_seeds(self) -> np.ndarray:
        positions = np.arange(self.num_samples * self.num_replicas, dtype=np.uint64) + np.uint64(self._epoch_start())
        with np.errstate(over="ignore"):
            return (_splitmix64(positions ^ _splitmix64(np.array([self.seed], dtype=np.uint64))) >> np.uint64(1)).astype(np.int64)

    def __iter__(self):
        shard = slice(self.rank, None, self.num_replicas)
        items = zip(self.epoch_indices()[shard].tolist(), self.item_seeds()[shard].tolist())
        skip = 0
        if self._resume is not None:
            resume_epoch, skip = self._resume
            self._resume = None
            if resume_epoch != self.epoch:
                skip = 0
        return iter(list(items)[skip:])

    def __len__(self) -> int:
        return self.num_samples


class ShardedEvalSampler(DistributedSampler):
    """In-order shard rank::world_size without padding, so no image is counted twice."""

    def __init__(self, num_items: int, rank: int = 0, world_size: int = 1):
        self.num_items = num_items
        self.rank = rank
        self.num_replicas = world_size
        self.num_samples = len(range(rank, num_items, world_size))
        self.epoch = 0

    def __iter__(self):
        return iter(range(self.rank, self.num_items, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def steps_for(num_items: int, global_batch: int, drop_last: bool = True) -> int:
    return num_items // global_batch if drop_last else math.ceil(num_items / global_batch)
