"""Matching cluster ids to classes (Hungarian) and the accuracy under that match."""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment


def confusion_counts(preds: torch.Tensor, targets: torch.Tensor, num_clusters: int, num_classes: int) -> torch.Tensor:
    """counts[k, c] = number of samples predicted k whose class is c."""
    flat = preds.long() * num_classes + targets.long()
    return torch.bincount(flat, minlength=num_clusters * num_classes).view(num_clusters, num_classes)


def match_from_counts(counts: torch.Tensor) -> dict[int, int]:
    """The cluster -> class map maximising agreeing samples, from a confusion-count table."""
    rows, cols = linear_sum_assignment(counts.detach().cpu().numpy(), maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


def matched_accuracy_from_counts(counts: torch.Tensor) -> float:
    total = int(counts.sum())
    if total == 0:
        raise ValueError("cluster accuracy needs at least one sample")
    return sum(int(counts[k, c]) for k, c in match_from_counts(counts).items()) / total


def _num_classes(preds: torch.Tensor, targets: torch.Tensor, num_classes: int | None) -> int:
    return num_classes or int(max(preds.max(), targets.max())) + 1


def hungarian_match(preds: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> dict[int, int]:
    n = _num_classes(preds, targets, num_classes)
    return match_from_counts(confusion_counts(preds, targets, n, n))


def cluster_accuracy(preds: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> float:
    """Accuracy after the best one-to-one relabelling of predicted clusters."""
    if len(preds) == 0:
        raise ValueError("cluster_accuracy needs at least one sample")
    n = _num_classes(preds, targets, num_classes)
    return matched_accuracy_from_counts(confusion_counts(preds, targets, n, n))
