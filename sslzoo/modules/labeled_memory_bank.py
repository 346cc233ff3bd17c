from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import all_gather_cat


class LabeledMemoryBank(nn.Module):
    """One L2-normalised embedding per labeled image, keyed by its dataset index (SimMatch §3.1).

    Buffers are registered in `__init__` (so they are checkpointed) and sized by
    `reset(indices, labels)` once the labeled split is known; `load_state_dict`
    resizes them to a checkpoint's shapes first, so a bank restores exactly.

    Update rule, per slot written in a step (Eq. 12; the official CIFAR code renormalises):
        bank[slot] = normalize(momentum * bank[slot] + (1 - momentum) * z)
    momentum=0.7 is the temporal-ensemble (CIFAR) bank, momentum=0 the teacher
    (ImageNet) bank that stores the EMA teacher's embedding. (index, z) pairs are
    all-gathered across processes first. A slot seen several times in one step
    (40 labels, batch 64) takes the mean of its embeddings, which does not depend
    on the order of the samples or processes (the reference's last-writer-wins does).
    """

    def __init__(self, dim: int, momentum: float = 0.7):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("indices", torch.zeros(0, dtype=torch.long))
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("embeddings", torch.zeros(0, dim))

    def __len__(self) -> int:
        return len(self.indices)

    @torch.no_grad()
    def reset(self, indices, labels, generator: torch.Generator | None = None) -> None:
        """Size the bank for these labeled dataset indices, with random unit embeddings."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        order = torch.argsort(indices)
        device = self.embeddings.device
        self.indices = indices[order].to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long)[order].to(device)
        random = torch.randn(len(indices), self.embeddings.shape[1], generator=generator)
        self.embeddings = F.normalize(random, dim=1).to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("indices", "labels", "embeddings"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def slots(self, dataset_indices: torch.Tensor) -> torch.Tensor:
        slots = torch.searchsorted(self.indices, dataset_indices)
        found = slots < len(self.indices)
        if not bool((self.indices[slots.clamp_max(len(self.indices) - 1)] == dataset_indices).logical_and(found).all()):
            raise KeyError("memory bank asked for an image that is not in the labeled set it was built for")
        return slots

    @torch.no_grad()
    def update(self, dataset_indices: torch.Tensor, embeddings: torch.Tensor) -> None:
        dataset_indices = all_gather_cat(dataset_indices)
        embeddings = all_gather_cat(embeddings.detach().to(self.embeddings.dtype))
        slots = self.slots(dataset_indices)
        unique, inverse = torch.unique(slots, return_inverse=True)
        summed = torch.zeros(len(unique), embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
        summed.index_add_(0, inverse, embeddings)
        counts = torch.bincount(inverse, minlength=len(unique)).unsqueeze(1).to(embeddings.dtype)
        new = self.momentum * self.embeddings[unique] + (1 - self.momentum) * summed / counts
        self.embeddings[unique] = F.normalize(new, dim=1)
