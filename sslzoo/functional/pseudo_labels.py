from __future__ import annotations

import torch


def confident_labels(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """argmax p and the mask 1[max p >= threshold] (FixMatch uses >=)."""
    confidence, labels = probs.max(dim=-1)
    return labels, confidence >= threshold


def confident_pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels, their confidence mask and p = softmax(logits), without gradient:
    pseudo-labels are targets."""
    probs = logits.detach().softmax(dim=-1)
    labels, mask = confident_labels(probs, threshold)
    return labels, mask, probs
