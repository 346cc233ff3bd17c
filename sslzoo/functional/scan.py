"""SCAN's two losses (Van Gansbeke et al., ECCV 2020): the clustering loss (Eq. 2) and
self-labeling's confidence-based cross-entropy (Sec. 2.3), as the official code computes them."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .precision import float32

LOG_FLOOR = -100.0  # nn.BCELoss clamps its log at -100; the official consistency term is BCE(<p, q>, 1)


@float32
def entropy(probs: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """H(p) = -sum_c p_c log max(p_c, eps) of a distribution over the last dimension."""
    return -(probs * probs.clamp_min(eps).log()).sum(dim=-1)


@float32
def scan_loss(
    anchor_logits: torch.Tensor, neighbour_logits: torch.Tensor, entropy_weight: float, mean_probs: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 2: -1/|D| sum log <Phi(X), Phi(k)> - lambda H(mean_X Phi(X)).

    Both branches keep their gradients (no stop-gradient, as in the official code). The
    entropy is of the anchors' mean prediction; pass `mean_probs` to use a mean over more
    than this batch (e.g. over all processes). Returns (total, consistency, entropy).
    """
    if anchor_logits.shape != neighbour_logits.shape:
        raise ValueError(f"anchor and neighbour logits differ in shape: {tuple(anchor_logits.shape)} vs {tuple(neighbour_logits.shape)}")
    anchor_probs = anchor_logits.float().softmax(dim=-1)
    neighbour_probs = neighbour_logits.float().softmax(dim=-1)
    similarity = (anchor_probs * neighbour_probs).sum(dim=-1)
    consistency = -similarity.log().clamp_min(LOG_FLOOR).mean()
    mean_probs = anchor_probs.mean(dim=0) if mean_probs is None else mean_probs
    spread = entropy(mean_probs)
    return consistency - entropy_weight * spread, consistency, spread


@torch.no_grad()
def scan_validation_loss(
    probs: torch.Tensor, neighbours: torch.Tensor, pair_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official model-selection score (utils/evaluate_utils.py scan_evaluate) of one head:
    over a whole evaluation set with probabilities `probs` [N, C] and each row's mined
    candidates `neighbours` [N, K+1] (row positions, the row itself included),
        consistency = BCE(<p_i, p_j>, 1) over every (i, j in neighbours[i]) pair,
        entropy     = H(mean_i p_i),
        total       = consistency - entropy      (weight 1, whatever the training weight).
    `pair_mask` [N, K+1] keeps only some pairs (a partial validation pass).
    Returns (total, consistency, entropy); the lowest total selects the head and the checkpoint."""
    probs = probs.float()
    similarity = (probs.unsqueeze(1) * probs[neighbours]).sum(dim=-1)
    log_similarity = similarity.log().clamp_min(LOG_FLOOR)
    consistency = -(log_similarity.mean() if pair_mask is None else log_similarity[pair_mask].mean())
    spread = entropy(probs.mean(dim=0))
    return consistency - spread, consistency, spread


@float32
def confidence_based_cross_entropy(
    weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float = 0.99, balance_classes: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-labeling: targets are the weak view's argmax where its max probability exceeds
    `threshold`; cross-entropy of the strong view on those samples only.

    With `balance_classes`, class c is weighted n / count_c (n confident samples, count_c of
    them labeled c), and the mean divides by the sum of the selected weights, as
    F.cross_entropy(weight=...) does. An empty confident set gives a zero loss that still
    reaches the graph (the official code raises instead). Returns (loss, targets, mask).
    """
    probs = weak_logits.detach().float().softmax(dim=-1)
    confidence, targets = probs.max(dim=-1)
    mask = confidence > threshold
    if not mask.any():
        return strong_logits.sum() * 0.0, targets, mask
    selected = targets[mask]
    weight = None
    if balance_classes:
        counts = torch.bincount(selected, minlength=strong_logits.shape[-1]).float()
        weight = torch.where(counts > 0, len(selected) / counts.clamp_min(1), torch.ones_like(counts))
    return F.cross_entropy(strong_logits[mask].float(), selected, weight=weight), targets, mask
