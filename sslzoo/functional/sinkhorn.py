"""Sinkhorn-Knopp equal-partition assignment, as SwAV / Suave use it."""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

from .precision import float32


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


# exp(-EXP_SPAN) stays a normal float32 (> 1e-38): below this span of scores / eps the plain
# exponential form cannot underflow a prototype's column to zero.
EXP_SPAN = 60.0


def _global_extreme(values: torch.Tensor, op, distributed: bool) -> torch.Tensor:
    values = values.clone()
    if distributed:
        dist.all_reduce(values, op=op)
    return values


def _sinkhorn_exp(log_q: torch.Tensor, iterations: int, distributed: bool, peak: torch.Tensor) -> torch.Tensor:
    """SwAV's own iterations on Q = exp(scores / eps - max): two sums per iteration, no logs."""
    q = (log_q - peak).exp_()
    num_prototypes = q.shape[1]
    # In place (the same values): Q is (batch + queue) x prototypes, re-read and re-written 2x per iteration.
    for _ in range(iterations):
        column_sums = q.sum(dim=0)
        if distributed:
            dist.all_reduce(column_sums)
        q.div_(column_sums * num_prototypes)
        q.div_(q.sum(dim=1, keepdim=True))
    return q.div_(q.sum(dim=1, keepdim=True)) if iterations == 0 else q


def _sinkhorn_log(log_q: torch.Tensor, iterations: int, distributed: bool) -> torch.Tensor:
    """The same iterations in log space, for spans of scores / eps where exp underflows."""
    num_prototypes = log_q.shape[1]
    for _ in range(iterations):
        log_q = log_q - _batch_logsumexp(log_q, distributed) - math.log(num_prototypes)
        log_q = log_q - log_q.logsumexp(dim=1, keepdim=True)  # rows sum to 1 (= B x the 1/B of SwAV)
    if iterations == 0:
        log_q = log_q - log_q.logsumexp(dim=1, keepdim=True)
    return log_q.exp()


@float32
@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, distributed: bool = True) -> torch.Tensor:
    """Soft codes Q (B, K) for prototype scores (B, K): each row sums to 1 and, as the
    iterations converge, each prototype receives an equal share of the whole batch
    (SwAV Eq. 3: max_Q Tr(Q^T C Z) + eps H(Q)).

    The iterations of SwAV's `distributed_sinkhorn` (Q = exp(scores / eps); per iteration,
    prototype sums -> 1/K, sample sums -> 1/B; return B Q). They run on exp(scores / eps - max)
    as SwAV does when the scores' span over eps is small enough that no entry underflows
    (cosine scores at eps 0.05: span 40), and in log space otherwise, so no row or column
    becomes all zeros at small eps. Under DDP the prototype sums are all-reduced and B counts
    every process's rows, so N processes give the codes one process computes for the
    concatenated batch (equal batch sizes per process). Computed in float32 whatever the input dtype.
    """
    if epsilon <= 0:
        raise ValueError(f"sinkhorn epsilon must be positive, got {epsilon}")
    distributed = distributed and _world_size() > 1
    log_q = scores.detach().float() / epsilon
    peak = _global_extreme(log_q.max(), dist.ReduceOp.MAX, distributed)
    floor = _global_extreme(log_q.min(), dist.ReduceOp.MIN, distributed)
    if peak - floor < EXP_SPAN:
        return _sinkhorn_exp(log_q, iterations, distributed, peak)
    return _sinkhorn_log(log_q, iterations, distributed)


@float32
@torch.no_grad()
def queue_extended_codes(
    scores: torch.Tensor, prototypes: torch.Tensor, queued: torch.Tensor | None, epsilon: float = 0.05, iterations: int = 3
) -> torch.Tensor:
    """SwAV's codes of a batch's prototype scores (B, K) with a feature queue: Sinkhorn over
    [queued . prototypes^T ; scores], of which the last B rows are returned."""
    batch = len(scores)
    if queued is not None:
        scores = torch.cat([queued.to(prototypes.dtype) @ prototypes.T, scores])
    return sinkhorn(scores, epsilon, iterations)[-batch:]
