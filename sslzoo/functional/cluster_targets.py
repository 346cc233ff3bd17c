"""Boosted SSL's clustering phase (Lerner, Shiran & Weinshall): fixed one-hot targets that
images swap within a batch, confident pseudo-targets, and the MSE clustering loss.

Checked against the official code, `boazlern/SSClustering` @2880bad:
`utils/utils.py::generate_gmm_targets` (initial targets) and
`algorithms/unsupervised_algorithms.py::DeepClustering.clustering_batch` (one step).

A target is stored as a cluster id, -1 meaning "no target" (the code's all-zero row of `nat`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .precision import float32

NO_TARGET = -1


def initial_targets(num_items: int, num_clusters: int, alpha: float, seed: int) -> torch.Tensor:
    """A cluster id per unlabeled item (paper Alg. 1 "initialize targets"; `generate_gmm_targets`
    with the default `nat_std=0`, i.e. exact one-hots), -1 = no target.

    Rounding exactly as the code does:
        T = int(num_items * alpha)           # Python truncation of the float product
        per_cluster, remainder = divmod(T, num_clusters)
    cluster k gets `per_cluster + 1` targets if k < remainder, else `per_cluster`; the other
    `num_items - T` items get -1. So when alpha*N is a multiple of K every cluster has exactly
    alpha*N/K targets (the paper's constraint, Eq. 3). Note that `int()` truncates the float
    product, e.g. int(100 * 0.29) == 28, as in the code.

    The blocks [0]*c0 + [1]*c1 + ... + [-1]*(N-T) are then permuted with
    `torch.randperm(N, generator=torch.Generator().manual_seed(seed))` (the code uses
    `np.random.shuffle` on the global NumPy state), so the result depends only on
    (num_items, num_clusters, alpha, seed).
    """
    if num_items < 0:
        raise ValueError(f"num_items must be >= 0, got {num_items}")
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha is the fraction of items that get a target and must be in (0, 1], got {alpha}")
    total = int(num_items * alpha)
    per_cluster, remainder = divmod(total, num_clusters)
    sizes = torch.full((num_clusters,), per_cluster, dtype=torch.long)
    sizes[:remainder] += 1
    ordered = torch.full((num_items,), NO_TARGET, dtype=torch.long)
    ordered[:total] = torch.repeat_interleave(torch.arange(num_clusters), sizes)
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    return ordered[order]


@float32
def target_distances(outputs: torch.Tensor, clusters: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """The unsquared L2 distance ||normalize(outputs[i]) - e_{clusters[j]}||_2, shape [B, len(clusters)],
    in float64 (the code's `sklearn.metrics.euclidean_distances` on L2-normalised logits);
    `squared` gives the paper's squared distance instead."""
    unit = F.normalize(outputs.detach().to(torch.float64), dim=1)
    # ||f - e_k||^2 = ||f||^2 - 2 f_k + 1, written as an explicit difference for exact values.
    onehots = F.one_hot(clusters.to(unit.device), unit.shape[1]).to(unit.dtype)
    distance = (unit[:, None, :] - onehots[None, :, :]).norm(dim=2)
    return distance.square() if squared else distance


class ClusteringStep(NamedTuple):
    """The result of one clustering step on a batch (see `assign_batch_targets`)."""

    stored: torch.Tensor   # LongTensor[B]: the batch's targets after the swap; write these back (-1 = none)
    kept: torch.Tensor     # BoolTensor[B]: images that enter this step's loss
    targets: torch.Tensor  # LongTensor[B]: this step's loss target (stored or pseudo), -1 where not kept


@float32
def assign_batch_targets(outputs: torch.Tensor, targets: torch.Tensor, rho: float = 0.2, squared: bool = False) -> ClusteringStep:
    """One assignment step of the clustering phase (paper Eq. 4 and the confidence rule;
    `DeepClustering.clustering_batch`).

    outputs: [B, K] head **logits** of the batch's un-augmented images (the code runs the model
        in eval mode under no_grad); they are L2-normalised here (not softmaxed).
    targets: [B] the batch's stored cluster ids, -1 = none.

    1. The c <= B stored targets of the batch (the non -1 entries, as one-hots e_t, in batch
       order) are reassigned to the B images by a rectangular Hungarian assignment
       (`scipy.optimize.linear_sum_assignment` on the [B, c] cost; the code uses
       `lap.lapjv(cost, extend_cost=True)`, which may break exact ties differently) minimising
       the sum of **unsquared** distances ||f_i - e_t||_2 (`euclidean_distances`; the paper's
       Eq. 4 squares them, which gives a different assignment in general). Images left
       without a target get -1. `stored` is what the code writes back with `update_targets`:
       targets only move within the batch, so the multiset of stored ids, and with it every
       cluster's global count, is preserved.
    2. Pseudo-targets: an image without a stored target whose **unsquared**
       ||f_i - e_{argmax f_i}||_2 < rho (strict) gets argmax f_i as its target **for this
       step only**: the code computes it after `update_targets`, so it is never stored. With
       ||f|| = 1 the rule is f_max > 1 - rho^2/2 (0.98 for rho = 0.2; the paper's squared
       reading would give 0.9).
    3. Images with neither are dropped from the loss (`kept` False, `targets` -1).

    The number of "switches" the code logs is `(stored != targets_in).sum()`.
    `squared=True` is the paper's text: squared distances in the cost and in the rho test.
    """
    if outputs.dim() != 2:
        raise ValueError(f"outputs must be [B, K] logits, got shape {tuple(outputs.shape)}")
    if targets.shape != outputs.shape[:1]:
        raise ValueError(f"targets must be [B] = [{outputs.shape[0]}], got shape {tuple(targets.shape)}")
    if rho < 0:
        raise ValueError(f"rho is a distance threshold and must be >= 0, got {rho}")
    num_clusters = outputs.shape[1]
    targets = targets.long()
    if bool(((targets < NO_TARGET) | (targets >= num_clusters)).any()):
        raise ValueError(f"targets must be cluster ids in [0, {num_clusters}) or -1 (no target)")

    holders = targets >= 0
    held = targets[holders]
    stored = torch.full_like(targets, NO_TARGET)
    if len(held) > 0:
        cost = target_distances(outputs, held, squared).cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        stored[torch.as_tensor(rows, device=targets.device)] = held[torch.as_tensor(cols, device=targets.device)]

    pseudo = outputs.detach().argmax(dim=1).to(targets.device)
    distance = target_distances(outputs, torch.arange(num_clusters, device=outputs.device), squared)
    confident = (distance.gather(1, pseudo.to(distance.device)[:, None])[:, 0] < rho).to(targets.device)
    step = torch.where(stored >= 0, stored, torch.where(confident, pseudo, torch.full_like(pseudo, NO_TARGET)))
    return ClusteringStep(stored=stored, kept=step >= 0, targets=step)


@float32
def clustering_loss(outputs_aug: torch.Tensor, targets: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
    """The clustering loss (paper Eq. 5 as the code computes it): `nn.MSELoss()` between the
    L2-normalised logits of the r augmentations of every kept image and its one-hot target.

    outputs_aug: [r, B, K], or [r*B, K] augmentation-major (row j*B + i is augmentation j of
        image i, the code's `torch.cat(augmented)`).
    targets: [B] this step's targets (`ClusteringStep.targets`); kept: [B] bool, default
        `targets >= 0`; a kept image must have a target.

    Averaging: the mean over all |S|*r*K squared elements, i.e.
        L = 1/(|S| r K) * sum_{i in S} sum_j ||normalize(g_j(x_i)) - e_{t_i}||^2,
    which is the paper's Eq. 5 divided by K (changing this changes the effective lr).
    If no image is kept the code would crash (`torch.stack([])`); here the loss is a zero
    that still depends on `outputs_aug` (so every DDP rank runs the same backward).
    """
    if targets.dim() != 1:
        raise ValueError(f"targets must be [B], got shape {tuple(targets.shape)}")
    batch = len(targets)
    if outputs_aug.dim() == 2:
        if batch == 0 or outputs_aug.shape[0] % batch != 0:
            raise ValueError(f"outputs_aug [r*B, K] needs a row count divisible by B={batch}, got {tuple(outputs_aug.shape)}")
        outputs_aug = outputs_aug.reshape(outputs_aug.shape[0] // batch, batch, outputs_aug.shape[1])
    if outputs_aug.dim() != 3 or outputs_aug.shape[1] != batch:
        raise ValueError(f"outputs_aug must be [r, B, K] or [r*B, K] with B={batch}, got {tuple(outputs_aug.shape)}")
    targets = targets.long().to(outputs_aug.device)
    kept = targets >= 0 if kept is None else kept.bool().to(outputs_aug.device)
    if kept.shape != targets.shape:
        raise ValueError(f"kept must be [B] = [{batch}], got shape {tuple(kept.shape)}")
    if bool((targets[kept] < 0).any()):
        raise ValueError("a kept image has target -1; pass ClusteringStep.targets (stored or pseudo targets), not the stored ones")
    if not bool(kept.any()):
        return outputs_aug.sum() * 0.0
    unit = F.normalize(outputs_aug[:, kept], dim=-1)
    onehots = F.one_hot(targets[kept], outputs_aug.shape[-1]).to(unit.dtype)
    return F.mse_loss(unit, onehots.expand_as(unit))
