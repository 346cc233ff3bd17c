"""Boosted SSL's top-k label permutations (spec §2.5, `evaluation/evaluate.py --top_k`): rank
class -> output maps by how far labeled images' outputs are from the one-hots, and report the
best test accuracy among the k best maps. That maximum is an oracle (it looks at the test
labels to pick the map), so it is reported as a curve over k and never as an accuracy."""
from __future__ import annotations

import torch

from .k_best_assignments import k_best_assignments


def class_output_costs(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """cost[c, j] = mean over the labeled images of class c of |logits - e_j|_1 (the official
    code's L1 distance of the raw logits to the one-hots)."""
    eye = torch.eye(num_classes, device=logits.device, dtype=torch.float64)
    distances = (logits.double()[:, None, :] - eye[None]).abs().sum(dim=-1)  # [N, K]
    cost = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=logits.device).index_add_(0, labels, distances)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).double()
    return cost / counts[:, None]


def nearby_permutations(cost: torch.Tensor, k: int, tolerance: int = 4) -> list[torch.Tensor]:
    """Up to k output -> class maps in increasing cost, keeping only those that differ from the
    best one in fewer than `tolerance` positions (`find_best_nearby_permutations`)."""
    ranked = k_best_assignments(cost.cpu(), k)
    maps = []
    for _, assignment in ranked:  # assignment[class] = output
        output_to_class = torch.empty(len(assignment), dtype=torch.long)
        output_to_class[list(assignment)] = torch.arange(len(assignment))
        maps.append(output_to_class)
    best = maps[0]
    return [m for m in maps if int((m != best).sum()) < tolerance]


def oracle_accuracy_curve(preds: torch.Tensor, targets: torch.Tensor, maps: list[torch.Tensor]) -> list[float]:
    """The best accuracy among the first 1, 2, ..., len(maps) maps (an oracle: it uses the test labels)."""
    curve, best = [], 0.0
    for output_to_class in maps:
        best = max(best, float((output_to_class.to(preds.device)[preds] == targets).float().mean()))
        curve.append(best)
    return curve
