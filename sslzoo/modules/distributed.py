"""Collectives that are no-ops in a single process (so modules work with or without DDP)."""
from __future__ import annotations

import torch
import torch.distributed as dist


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every process along dim 0, in rank order (equal sizes)."""
    if _world() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(_world())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    if _world() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / _world()
