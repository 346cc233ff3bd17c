"""Classification and consistency losses (pure functions)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .precision import float32


@float32
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, **options) -> torch.Tensor:
    """F.cross_entropy computed in float32 (supervised, RotNet and probe losses under mixed precision)."""
    return F.cross_entropy(logits, targets, **options)


@float32
def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """H(p, softmax(logits)) = -sum_c p_c log softmax(logits)_c, per sample then reduced."""
    loss = -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return _reduce(loss, reduction)


@float32
def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean_i[ mask_i * CE(logits_i, targets_i) ] over ALL samples.

    FixMatch (Eq. 4 and its code) divides by the batch size muB, not by the number
    of confident samples; `targets` may be class ids or probability vectors.
    """
    if targets.dtype in (torch.int64, torch.int32):
        per_sample = F.cross_entropy(logits, targets, reduction="none")
    else:
        per_sample = soft_cross_entropy(logits, targets, reduction="none")
    return (per_sample * mask.to(per_sample.dtype)).mean()


@float32
def softmax_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean Teacher's consistency: mean over batch x classes of (softmax s - softmax t)^2.

    Gradient flows through the student only; the teacher is a target.
    """
    return F.mse_loss(student_logits.softmax(-1), teacher_logits.detach().softmax(-1))


@float32
def softmax_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax t || softmax s), summed over classes and averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits.detach(), -1), reduction="batchmean", log_target=True)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}")


@float32
def cross_view_cross_entropy(logits: list[torch.Tensor], targets: list[torch.Tensor], target_views: list[int]) -> torch.Tensor:
    """SwAV's swapped prediction and DINO's multi-crop loss: the mean, over every pair of a
    target view t and a predicting view v != t, of mean_b H(targets[t], softmax(logits[v])).
    `target_views[t]` is the index in `logits` of the view that produced `targets[t]`."""
    terms = [
        soft_cross_entropy(view_logits, target)
        for target, source in zip(targets, target_views)
        for v, view_logits in enumerate(logits)
        if v != source
    ]
    if not terms:
        raise ValueError("cross_view_cross_entropy needs at least one predicting view besides the target views")
    return torch.stack(terms).mean()


def share_weights(rows: dict[str, int]) -> dict[str, float]:
    """Each part's share of all predicting rows: weighting per-part mean losses by these
    equals one mean cross-entropy over the concatenated rows (Suave/Daino's loss weighting)."""
    total = sum(rows.values())
    return {name: count / total for name, count in rows.items()}
