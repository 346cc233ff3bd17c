"""Nearest-neighbour mining in feature space (SCAN's first step) and the neighbours' label purity."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .precision import float32

BACKENDS = ("auto", "faiss", "torch")
_CHUNK_FLOATS = 64 * 2**20  # 256 MiB of float32 similarities per chunk


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _torch_topk(unit: torch.Tensor, count: int, chunk_size: int) -> torch.Tensor:
    """Exact top-`count` inner products of every row, chunk_size rows of similarities at a time."""
    return torch.cat([(chunk @ unit.T).topk(count, dim=1).indices for chunk in unit.split(chunk_size)])


def _faiss_topk(faiss, unit: torch.Tensor, count: int) -> torch.Tensor:
    array = unit.detach().cpu().float().contiguous().numpy()
    index = faiss.IndexFlatIP(array.shape[1])
    index.add(array)
    _, ids = index.search(array, count)
    return torch.from_numpy(ids).long().to(unit.device)


@float32
@torch.no_grad()
def mine_neighbours(features: torch.Tensor, k: int, chunk_size: int | None = None, backend: str = "auto") -> torch.Tensor:
    """The k + 1 rows most cosine-similar to each row of `features` (N, D), among all N rows,
    as a LongTensor (N, k + 1) in descending similarity cos(x_i, x_j) = x_i . x_j / (|x_i| |x_j|).

    Column 0 is normally the row itself (similarity 1); SCAN (Van Gansbeke et al. 2020,
    `mine_nearest_neighbors`) keeps it, so each anchor is one of its own K + 1 candidates.
    The search is exact. backend "torch" works on the features' device, chunk_size rows at
    a time (default: a chunk of similarities of at most 256 MiB); "faiss" uses an exact
    faiss.IndexFlatIP on the CPU; "auto" uses faiss when it is installed and the features
    are on the CPU, else torch.
    """
    if features.dim() != 2:
        raise ValueError(f"mine_neighbours needs (N, D) features, got shape {tuple(features.shape)}")
    num_rows = len(features)
    if not 1 <= k < num_rows:
        raise ValueError(f"mine_neighbours needs 1 <= k < N = {num_rows}, got k = {k}")
    if backend not in BACKENDS:
        raise ValueError(f"mine_neighbours backend must be one of {BACKENDS}, got {backend!r}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"mine_neighbours chunk_size must be positive, got {chunk_size}")
    unit = F.normalize(features.float(), dim=1)
    faiss = _faiss() if backend != "torch" else None
    if backend == "faiss" and faiss is None:
        raise ImportError("mine_neighbours(backend='faiss') needs faiss: pip install faiss-cpu")
    if faiss is not None and (backend == "faiss" or features.device.type == "cpu"):
        return _faiss_topk(faiss, unit, k + 1)
    return _torch_topk(unit, k + 1, chunk_size or max(1, _CHUNK_FLOATS // num_rows))


def neighbour_purity(neighbours: torch.Tensor, targets: torch.Tensor, k: int | None = None) -> float:
    """The fraction of (anchor, neighbour) pairs in the same class, over neighbour columns
    1..k (default: all but column 0, the anchor itself), i.e. SCAN's neighbour accuracy
    mean[ targets[neighbours[i, j]] == targets[i] ].

    Targets < 0 mean unknown: pairs whose anchor or neighbour has an unknown class are left
    out (with every target known this is exactly SCAN's number).
    """
    if neighbours.dim() != 2 or len(neighbours) != len(targets):
        raise ValueError(
            f"neighbour_purity needs (N, k + 1) neighbours and N targets, got {tuple(neighbours.shape)} and {tuple(targets.shape)}"
        )
    k = neighbours.shape[1] - 1 if k is None else k
    if not 1 <= k < neighbours.shape[1]:
        raise ValueError(f"neighbour_purity needs 1 <= k <= {neighbours.shape[1] - 1}, got k = {k}")
    targets = targets.to(neighbours.device).long()
    anchor = targets[:, None].expand(-1, k)
    neighbour = targets[neighbours[:, 1 : k + 1]]
    known = (anchor >= 0) & (neighbour >= 0)
    if not known.any():
        raise ValueError("neighbour_purity needs at least one anchor and neighbour with a known target (>= 0)")
    return (anchor[known] == neighbour[known]).double().mean().item()
