from __future__ import annotations

import torch
from torch import nn

from ..functional.cluster_targets import NO_TARGET, initial_targets
from .distributed import all_gather_uneven


class ClusterTargetTable(nn.Module):
    """Boosted SSL's stored clustering targets: `targets[p]` is the cluster id of the item at
    position p of the unlabeled set (a dense index 0..N-1 into the unlabeled dataset, which
    in the paper is *all* training images), -1 = no target. The official code keeps them as
    the dataset's `nat` matrix and rewrites them with `update_targets(idx, new_targets)`.

    `targets` is a persistent buffer, so a resumed run keeps its assignment; it is built by
    `reset(num_items)` (from `initial_targets(num_items, num_clusters, alpha, seed)`) once
    the unlabeled set's size is known, and `load_state_dict` resizes it to a checkpoint's.
    """

    def __init__(self, num_clusters: int, alpha: float = 1.0, seed: int = 0, num_items: int | None = None):
        super().__init__()
        if num_clusters < 1:
            raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
        self.num_clusters = num_clusters
        self.alpha = alpha
        self.seed = seed
        self.register_buffer("targets", torch.zeros(0, dtype=torch.long))
        if num_items is not None:
            self.reset(num_items)

    def __len__(self) -> int:
        return len(self.targets)

    @torch.no_grad()
    def reset(self, num_items: int) -> None:
        """Build the initial targets for an unlabeled set of `num_items` items (the same on every rank)."""
        self.targets = initial_targets(num_items, self.num_clusters, self.alpha, self.seed).to(self.targets.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "targets")
        if saved is not None:
            self.targets = torch.empty_like(saved, device=self.targets.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check(self, positions: torch.Tensor) -> torch.Tensor:
        if len(self.targets) == 0:
            raise RuntimeError("the cluster target table is empty; call reset(len(unlabeled_set)) before training")
        positions = torch.as_tensor(positions, dtype=torch.long, device=self.targets.device)
        if positions.dim() != 1:
            raise ValueError(f"positions must be a 1-D tensor, got shape {tuple(positions.shape)}")
        if len(positions) and (int(positions.min()) < 0 or int(positions.max()) >= len(self.targets)):
            raise IndexError(
                f"positions must index the unlabeled set [0, {len(self.targets)}); "
                "pass positions in the unlabeled set, not dataset indices of another split"
            )
        return positions

    def lookup(self, positions: torch.Tensor) -> torch.Tensor:
        """The stored cluster ids (-1 = none) of these unlabeled positions, on the positions' device."""
        device = torch.as_tensor(positions).device
        return self.targets[self._check(positions)].to(device)

    @torch.no_grad()
    def update(self, positions: torch.Tensor, new_targets: torch.Tensor) -> None:
        """Write `new_targets` (ClusteringStep.stored) at `positions`, after all-gathering both
        from every DDP rank (in rank order; ranks may hold different batch sizes) so that every
        rank holds the same table.

        The gathered positions must be distinct: two writes to one item would break the
        "targets only move within a batch" count invariant. DistributedSampler repeats items to
        pad the last batches when the set size is not a multiple of the world size; use
        drop_last=True (or a set size divisible by it) for the clustering epoch.
        """
        positions = torch.as_tensor(positions, dtype=torch.long)
        new_targets = torch.as_tensor(new_targets, dtype=torch.long, device=positions.device)
        if new_targets.shape != positions.shape:
            raise ValueError(f"new_targets {tuple(new_targets.shape)} and positions {tuple(positions.shape)} must match")
        positions = self._check(all_gather_uneven(positions))
        new_targets = all_gather_uneven(new_targets).to(self.targets.device)
        if len(torch.unique(positions)) != len(positions):
            raise ValueError(
                "update got the same unlabeled position twice in one step (across ranks); the clustering "
                "epoch needs a sampler that visits each item once, e.g. DistributedSampler(drop_last=True)"
            )
        if bool(((new_targets < NO_TARGET) | (new_targets >= self.num_clusters)).any()):
            raise ValueError(f"new targets must be cluster ids in [0, {self.num_clusters}) or -1 (no target)")
        self.targets[positions] = new_targets

    def counts(self) -> torch.Tensor:
        """LongTensor[num_clusters]: how many items hold each cluster's target."""
        held = self.targets[self.targets >= 0]
        return torch.bincount(held, minlength=self.num_clusters)
