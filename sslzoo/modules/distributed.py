"""Collectives that are no-ops in a single process (so modules work with or without DDP)."""
from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


_world = world_size


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


@torch.no_grad()
def all_gather_uneven(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every process along dim 0, in rank order, when the
    processes hold different numbers of rows (an unpadded eval shard)."""
    if _world() == 1:
        return tensor
    size = torch.tensor([len(tensor)], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(_world())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, *tensor.shape[1:], dtype=tensor.dtype, device=tensor.device)
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in range(_world())]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(s.item())] for part, s in zip(parts, sizes)])


def differentiable_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over processes, with gradients flowing back to every process's
    input (for a batch statistic such as SCAN's mean prediction, so that the DDP gradient
    equals the one-process gradient of the whole batch)."""
    if _world() == 1:
        return tensor
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor) / _world()


def any_process(flag: bool, device: torch.device | None = None) -> bool:
    """True when `flag` holds on at least one process (so every process takes the same branch)."""
    if _world() == 1:
        return bool(flag)
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)
