"""LC-MT's local clustering loss (Chen et al., "Local Clustering with Mean Teacher", Eq. 5-6)."""
from __future__ import annotations

import torch

from .precision import float32


@float32
def mean_squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d_ij = mean over feature dims of (a_i - b_j)^2 — the official code's scale (||.||^2 / dim),
    to which its epsilons (40, 50) are calibrated."""
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).mean(dim=-1)


@float32
def neighbour_loss(distances: torch.Tensor, epsilon: float) -> torch.Tensor:
    """sum_ij d_ij w_ij m_ij / sum_ij m_ij with m_ij = 1[d_ij <= eps], w_ij = exp(-d_ij / eps),
    over a matrix of distances d.

    As in the official code, w is not detached (gradient reaches both ends of a pair
    through d and w) and the loss is normalised by the number of neighbour pairs,
    self-pairs included, not by the batch size.
    """
    if epsilon <= 0:
        return distances.sum() * 0.0  # no pair is within a zero radius except exact copies, which add 0
    neighbours = distances <= epsilon
    weighted = torch.where(neighbours, distances * torch.exp(-distances / epsilon), torch.zeros_like(distances))
    return weighted.sum() / neighbours.sum().clamp_min(1)


@float32
def pair_clustering_loss(a: torch.Tensor, b: torch.Tensor, epsilon: float) -> torch.Tensor:
    """`neighbour_loss` of the pairs (a_i, b_j)."""
    return neighbour_loss(mean_squared_distances(a, b), epsilon)


@float32
def clustering_distances(labeled: torch.Tensor, unlabeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distance matrices L_lc looks at: labeled-unlabeled [L, U] and unlabeled-unlabeled [U, U]
    (labeled-labeled pairs are left out)."""
    return mean_squared_distances(labeled, unlabeled), mean_squared_distances(unlabeled, unlabeled)


@float32
def local_clustering_loss_of(distances: tuple[torch.Tensor, torch.Tensor], epsilon: float) -> torch.Tensor:
    """L_lc = L(Z_l, Z_u) + L(Z_u, Z_u) from the two matrices of `clustering_distances`."""
    labeled_unlabeled, within = distances
    return neighbour_loss(labeled_unlabeled, epsilon) + neighbour_loss(within, epsilon)


@float32
def local_clustering_loss(labeled: torch.Tensor, unlabeled: torch.Tensor, epsilon: float) -> torch.Tensor:
    """L_lc = L(Z_l, Z_u) + L(Z_u, Z_u); labeled-labeled pairs are left out."""
    return local_clustering_loss_of(clustering_distances(labeled, unlabeled), epsilon)


@float32
def flat_pair_distances(distances: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The pairs of `clustering_distances`, flattened, without the unlabeled self-pairs. Used to
    monitor how many pairs are neighbours and to calibrate eps."""
    labeled_unlabeled, within = distances
    off_diagonal = ~torch.eye(len(within), dtype=torch.bool, device=within.device)
    return torch.cat([labeled_unlabeled.flatten(), within[off_diagonal]])


@float32
def pair_distances(labeled: torch.Tensor, unlabeled: torch.Tensor) -> torch.Tensor:
    """`flat_pair_distances` of the features."""
    return flat_pair_distances(clustering_distances(labeled, unlabeled))
