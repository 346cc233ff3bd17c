"""Targets derived from predictions: probabilities, confident pseudo-labels, DINO's teacher targets."""
from __future__ import annotations

import torch

from .precision import float32


@float32
def softmax_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / temperature) over the last dimension."""
    return (logits / temperature).softmax(dim=-1)


@float32
def sharpened_targets(teacher_scores: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """DINO's teacher targets softmax((g_t(x) - c) / tau_t): centred, then sharpened (tau_t 0.04-0.07)."""
    return ((teacher_scores - center) / temperature).softmax(dim=-1)


@float32
def confident_labels(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """argmax p and the mask 1[max p >= threshold] (FixMatch uses >=)."""
    confidence, labels = probs.max(dim=-1)
    return labels, confidence >= threshold


@float32
def confident_pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels, their confidence mask and p = softmax(logits), without gradient:
    pseudo-labels are targets."""
    probs = logits.detach().softmax(dim=-1)
    labels, mask = confident_labels(probs, threshold)
    return labels, mask, probs
