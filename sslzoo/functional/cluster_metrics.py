"""Clustering metrics from a contingency table (clusters x classes), so that summing the
tables of every process gives the exact global metric under DDP."""
from __future__ import annotations

import numpy as np
import torch

from .clustering import confusion_counts, match_from_counts


def contingency(preds: torch.Tensor, targets: torch.Tensor, num_clusters: int, num_classes: int) -> torch.Tensor:
    """counts[k, c] = number of samples assigned cluster k whose class is c (num_clusters, num_classes)."""
    if preds.shape != targets.shape or preds.dim() != 1:
        raise ValueError(f"contingency needs two (N,) label vectors, got {tuple(preds.shape)} and {tuple(targets.shape)}")
    if len(preds) and not (0 <= int(preds.min()) and int(preds.max()) < num_clusters):
        raise ValueError(f"contingency: cluster ids must lie in [0, {num_clusters})")
    if len(targets) and not (0 <= int(targets.min()) and int(targets.max()) < num_classes):
        raise ValueError(f"contingency: class ids must lie in [0, {num_classes})")
    return confusion_counts(preds, targets, num_clusters, num_classes)


def _table(counts: torch.Tensor) -> np.ndarray:
    table = counts.detach().cpu().numpy().astype(np.int64)
    if table.ndim != 2 or table.sum() == 0:
        raise ValueError("clustering metrics need a non-empty 2-D contingency table")
    return table


def _entropy(marginal: np.ndarray) -> float:
    """Entropy of a count vector, as scikit-learn's `entropy` writes it: sum p (log n_i - log n)."""
    counts = marginal[marginal > 0].astype(np.float64)
    if counts.size == 1:
        return 0.0
    total = counts.sum()
    return float(-np.sum((counts / total) * (np.log(counts) - np.log(total))))


def normalized_mutual_info(counts: torch.Tensor) -> float:
    """NMI = I(U; V) / ((H(U) + H(V)) / 2), with n_kc = counts[k, c], n = sum n_kc,
    I = sum n_kc / n log(n n_kc / (n_k. n_.c)) and H the entropies of the marginals:
    scikit-learn's `normalized_mutual_info_score` (arithmetic mean), including its
    conventions 1.0 when both sides have a single label and 0.0 when I = 0 otherwise.
    The terms are formed and summed in scikit-learn's order (class-major, the logarithms split
    as its `mutual_info_score` splits them), so the two agree to the last bit."""
    table = _table(counts).T  # [class, cluster]: scikit-learn's contingency orientation
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]  # only labels that occur
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    if 1 in table.shape:
        return 0.0
    k, c = np.nonzero(table)
    values = table[k, c].astype(np.float64)
    total = values.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    joint = values / total
    log_outer = -np.log((rows[k] * cols[c]).astype(np.float64)) + np.log(float(rows.sum())) + np.log(float(cols.sum()))
    terms = joint * (np.log(values) - np.log(total)) + joint * log_outer
    mutual = max(float(np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms).sum()), 0.0)
    if mutual == 0.0:
        return 0.0
    return mutual / ((_entropy(rows) + _entropy(cols)) / 2)


def _pairs(x: np.ndarray) -> int:
    """sum of C(x, 2), exactly in Python integers."""
    return int((x * (x - 1) // 2).sum())


def adjusted_rand_index(counts: torch.Tensor) -> float:
    """ARI (Hubert & Arabie 1985) = (index - E[index]) / (max - E[index]) with
    index = sum_kc C(n_kc, 2), E[index] = sum_k C(n_k., 2) sum_c C(n_.c, 2) / C(n, 2)
    and max = (sum_k C(n_k., 2) + sum_c C(n_.c, 2)) / 2; 1.0 when the two partitions are
    identical (where the ratio is 0 / 0), as scikit-learn's `adjusted_rand_score`."""
    table = _table(counts)
    same_both = _pairs(table)
    same_cluster, same_class = _pairs(table.sum(axis=1)), _pairs(table.sum(axis=0))
    total = _pairs(np.array([table.sum()]))
    # Pair-confusion form (exact integers): tp, fp, fn, tn counts of sample pairs.
    tp, fp, fn = same_both, same_cluster - same_both, same_class - same_both
    tn = total - tp - fp - fn
    if fp == 0 and fn == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def many_to_one_map(counts: torch.Tensor) -> torch.Tensor:
    """Each cluster's majority class, argmax_c counts[k, c] (ties and empty clusters: the
    lowest class index), for evaluating overclustering (more clusters than classes)."""
    return counts.argmax(dim=1)


def one_to_one_map(counts: torch.Tensor) -> torch.Tensor:
    """The one-to-one cluster -> class map maximising agreeing samples (Hungarian)."""
    num_clusters, num_classes = counts.shape
    if num_clusters > num_classes:
        raise ValueError(
            f"one_to_one_map needs num_clusters <= num_classes, got {num_clusters} > {num_classes}; use many_to_one_map"
        )
    match = match_from_counts(counts)
    return torch.tensor([match[k] for k in range(num_clusters)], dtype=torch.long, device=counts.device)


def cluster_to_class_map(counts: torch.Tensor) -> torch.Tensor:
    """SCAN's evaluation map: one-to-one (Hungarian) when there are as many clusters as classes,
    many-to-one otherwise (overclustering)."""
    num_clusters, num_classes = counts.shape
    return one_to_one_map(counts) if num_clusters == num_classes else many_to_one_map(counts)


def remapped_topk_accuracy(probs: torch.Tensor, targets: torch.Tensor, cluster_to_class: torch.Tensor, k: int = 5) -> float:
    """Top-k accuracy of the class probabilities P(c | x) = sum_{j: map(j) = c} probs[x, j]
    (N, num_clusters) -> classes. Only classes some cluster maps to compete, so k is clamped
    to their number. Under a one-to-one map this is SCAN's top-5 of `hungarian_evaluate`."""
    if probs.dim() != 2 or len(probs) != len(targets) or cluster_to_class.shape != (probs.shape[1],):
        raise ValueError(
            f"remapped_topk_accuracy needs probs (N, K), N targets and K cluster classes, got "
            f"{tuple(probs.shape)}, {tuple(targets.shape)}, {tuple(cluster_to_class.shape)}"
        )
    if len(probs) == 0 or k < 1:
        raise ValueError("remapped_topk_accuracy needs at least one sample and k >= 1")
    if int(cluster_to_class.min()) < 0:
        raise ValueError("remapped_topk_accuracy: every cluster must map to a class >= 0")
    cluster_to_class = cluster_to_class.to(probs.device).long()
    num_classes = int(cluster_to_class.max()) + 1
    class_probs = probs.new_zeros(len(probs), num_classes).index_add_(1, cluster_to_class, probs)
    mapped = torch.zeros(num_classes, dtype=torch.bool, device=probs.device)
    mapped[cluster_to_class] = True
    class_probs = class_probs.masked_fill(~mapped, float("-inf"))
    top = class_probs.topk(min(k, int(mapped.sum())), dim=1).indices
    return (top == targets.to(probs.device)[:, None]).any(dim=1).double().mean().item()
