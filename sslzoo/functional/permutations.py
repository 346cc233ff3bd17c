"""Boosted SSL's top-k label permutations (spec §2.5, `evaluation/evaluate.py --top_k`): rank
class -> output maps by how far labeled images' outputs are from the one-hots, and report the
best test accuracy among the k best maps. That maximum is an oracle (it looks at the test
labels to pick the map), so it is reported as a curve over k and never as an accuracy."""
from __future__ import annotations

import torch

from .k_best_assignments import k_best_assignments


def class_output_costs(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """cost[c, j] from the L1 distances |logits - e_j|_1 of the raw logits to the one-hots of the
    labeled images of class c (`utils/permutation_utils.py::get_perm_cost_matrix`, `metric='l1'`).

    Without `row_weights`: the mean over the class's rows. With them (`official_row_weights`):
    the weighted **sum** over the class's rows, as the code accumulates
    `0.1 * sum(distances[:4]) + 0.9 * sum(distances[4:])` over its `n_repetitions` passes.
    """
    eye = torch.eye(num_classes, device=logits.device, dtype=torch.float64)
    distances = (logits.double()[:, None, :] - eye[None]).abs().sum(dim=-1)  # [N, K]
    if row_weights is not None:
        distances = distances * row_weights.to(distances)[:, None]
    cost = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=logits.device).index_add_(0, labels, distances)
    if row_weights is not None:
        return cost
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).double()
    return cost / counts[:, None]


def official_row_weights(indices: torch.Tensor, labels: torch.Tensor, rotations: torch.Tensor, first_rows: int = 4,
                         first_weight: float = 0.1, other_weight: float = 0.9) -> torch.Tensor:
    """The code's row weights: it stacks a class's batch rotation-major (`torch.cat` of the 4
    rotated copies of the class's images, in dataset order) and weighs rows [:4] 0.1 and the rest
    0.9. Those 4 rows are the class's first 4 images (smallest dataset index), unrotated; every
    other (image, rotation) row weighs 0.9. indices/labels/rotations: one entry per row."""
    weights = torch.full(labels.shape, other_weight, dtype=torch.float64, device=labels.device)
    for c in labels.unique():
        rows = labels == c
        first = indices[rows].unique()[:first_rows]  # unique() sorts
        weights[rows & (rotations == 0) & torch.isin(indices, first)] = first_weight
    return weights


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
