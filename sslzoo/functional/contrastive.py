"""SimCLR's NT-Xent contrastive loss (also SCAN's pretext task), optionally over every process's batch."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .precision import float32

ANCHORS = ("both", "first")


class _GatherWithGrad(torch.autograd.Function):
    """All processes' rows in rank order; the backward sums every process's gradient for
    this process's rows (all-reduce, then this process's slice)."""

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        ctx.rows = slice(dist.get_rank() * len(local), (dist.get_rank() + 1) * len(local))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rows]


def _gather_with_grad(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every process's rows and where this process's rows start among them.

    Each process's gradient reaches the rows' owner, so with DDP's gradient averaging the
    parameters receive the gradient of the mean of the per-process losses, i.e. of the
    loss on the global batch. (Written here rather than with the deprecated
    torch.distributed.nn.functional.all_gather, whose gloo backward needs all_to_all.)"""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    return _GatherWithGrad.apply(local), dist.get_rank() * len(local)


def _check(z0: torch.Tensor, z1: torch.Tensor, temperature: float, anchors: str) -> None:
    if z0.dim() != 2 or z0.shape != z1.shape:
        raise ValueError(f"nt_xent needs two (B, D) batches of the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if len(z0) == 0:
        raise ValueError("nt_xent needs at least one pair")
    if temperature <= 0:
        raise ValueError(f"nt_xent temperature must be positive, got {temperature}")
    if anchors not in ANCHORS:
        raise ValueError(f"nt_xent anchors must be one of {ANCHORS}, got {anchors!r}")


@float32
def nt_xent(
    z0: torch.Tensor, z1: torch.Tensor, temperature: float = 0.1, anchors: str = "both", gather: bool = True
) -> torch.Tensor:
    """NT-Xent (SimCLR, Chen et al. 2020, Eq. 1) of two views' projections z0, z1 (B, D).

    With u = z / ||z|| for the 2B rows [z0; z1] and sim(i, j) = u_i . u_j, anchor i whose
    positive p(i) is the other view of the same image has the loss

        l_i = -log( exp(sim(i, p(i)) / t) / sum_{j != i} exp(sim(i, j) / t) ),

    the contrast set being all 2B rows but i itself. anchors="both" returns the mean of l_i
    over all 2B anchors (SimCLR's symmetric loss); anchors="first" the mean over the B view-0
    anchors only, as SCAN's `SimCLRLoss` (Van Gansbeke et al. 2020) does, still contrasting
    against all 2B rows.

    With `gather` under torch.distributed, the contrast set is the 2 B W rows of all W
    processes (gathered with gradient; every process must pass the same B) and the anchors
    are this process's rows: the mean of the W per-process losses is the loss of one process
    on the concatenated batch.
    """
    _check(z0, z1, temperature, anchors)
    batch = len(z0)
    local = F.normalize(torch.cat([z0, z1]), dim=1)
    contrast, offset = _gather_with_grad(local) if gather else (local, 0)
    queries = local if anchors == "both" else local[:batch]
    rows = torch.arange(len(queries), device=local.device)
    logits = queries @ contrast.T / temperature
    logits = logits.index_put((rows, offset + rows), torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device))
    positives = offset + (rows + batch) % (2 * batch)
    return F.cross_entropy(logits, positives)
