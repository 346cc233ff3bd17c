"""Sinkhorn-Knopp equal-partition assignment, as SwAV / Suave use it."""
from __future__ import annotations

import math

import torch
import torch.distributed as dist


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _batch_logsumexp(log_q: torch.Tensor, distributed: bool) -> torch.Tensor:
    """logsumexp over the samples (dim 0) of every process's rows, for each prototype."""
    peak = log_q.max(dim=0).values
    if distributed:
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    total = (log_q - peak).exp().sum(dim=0)
    if distributed:
        dist.all_reduce(total)
    return peak + total.log()


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, distributed: bool = True) -> torch.Tensor:
    """Soft codes Q (B, K) for prototype scores (B, K): each row sums to 1 and, as the
    iterations converge, each prototype receives an equal share of the whole batch
    (SwAV Eq. 3: max_Q Tr(Q^T C Z) + eps H(Q)).

    The same iterations as SwAV's `distributed_sinkhorn` (Q = exp(scores / eps); per
    iteration, prototype sums -> 1/K, sample sums -> 1/B; return B Q) are run in log space,
    so no entry overflows or underflows to an all-zero row at small eps. Under DDP the
    prototype sums are all-reduced and B counts every process's rows, so N processes give
    the codes one process computes for the concatenated batch (equal batch sizes per process).
    Computed in float32 whatever the input dtype.
    """
    if epsilon <= 0:
        raise ValueError(f"sinkhorn epsilon must be positive, got {epsilon}")
    distributed = distributed and _world_size() > 1
    log_q = scores.detach().float() / epsilon
    num_prototypes = log_q.shape[1]
    for _ in range(iterations):
        log_q = log_q - _batch_logsumexp(log_q, distributed) - math.log(num_prototypes)
        log_q = log_q - log_q.logsumexp(dim=1, keepdim=True)  # rows sum to 1 (= B x the 1/B of SwAV)
    if iterations == 0:
        log_q = log_q - log_q.logsumexp(dim=1, keepdim=True)
    return log_q.exp()
