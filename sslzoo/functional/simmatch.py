"""SimMatch's label propagation through a labeled memory bank (Zheng et al., CVPR 2022, §3.2-3.3)."""
from __future__ import annotations

import torch

from .precision import float32


@float32
def instance_logits(z: torch.Tensor, bank_embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """z . bank^T / t: the similarities of embeddings to the labeled memory bank (Eq. 5-6)."""
    return z @ bank_embeddings.T / temperature


@float32
def align_distribution(probs: torch.Tensor, mean_of_batch_means: torch.Tensor) -> torch.Tensor:
    """Distribution alignment: p <- normalize(p / E[p]) with E[p] the mean of recent batch means."""
    aligned = probs / mean_of_batch_means
    return aligned / aligned.sum(dim=-1, keepdim=True)


@float32
def unfold(probs: torch.Tensor, bank_labels: torch.Tensor) -> torch.Tensor:
    """p_unfold[b, k] = p[b, label_k]: each bank entry receives its class's probability (Eq. 7)."""
    return probs.gather(1, bank_labels.expand(probs.shape[0], -1))


@float32
def aggregate(similarities: torch.Tensor, bank_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """q_agg[b, c] = sum_{k: label_k = c} q[b, k]: similarities summed per class (Eq. 9)."""
    index = bank_labels.expand(similarities.shape[0], -1)
    return torch.zeros(similarities.shape[0], num_classes, dtype=similarities.dtype, device=similarities.device).scatter_add_(1, index, similarities)


@float32
def propagate_labels(
    probs: torch.Tensor, similarities: torch.Tensor, bank_labels: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels <-> instances: returns (p_hat, q_hat).

    q_hat = normalize(q * p_unfold) calibrates the instance similarities with the
    class prediction (Eq. 8); p_hat = alpha p + (1 - alpha) q_agg, where q_agg sums
    the *uncalibrated* q per class (Eq. 9-10, as the official code does).
    """
    calibrated = similarities * unfold(probs, bank_labels)
    q_hat = calibrated / calibrated.sum(dim=-1, keepdim=True)
    p_hat = alpha * probs + (1 - alpha) * aggregate(similarities, bank_labels, probs.shape[-1])
    return p_hat, q_hat
