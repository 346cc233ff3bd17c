from __future__ import annotations

import torch


def confident_pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels argmax p, the mask 1[max p >= threshold] (FixMatch uses >=), and p.

    Computed without gradient: pseudo-labels are targets.
    """
    probs = logits.detach().softmax(dim=-1)
    confidence, labels = probs.max(dim=-1)
    return labels, confidence >= threshold, probs
