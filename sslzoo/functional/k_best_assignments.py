"""The k lowest-cost perfect matchings of a square cost matrix (Murty, 1968).

Boosted SSL's evaluation (`SSClustering/evaluation/evaluate.py --top_k`, `utils/murty_algo.py`)
ranks cluster -> class maps this way; see spec §2.5 (and pitfall 9: a max over k maps is an
oracle, not an accuracy).
"""
from __future__ import annotations

import heapq
import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _assignment_cost(cost: np.ndarray, assignment: tuple[int, ...]) -> float:
    """The exactly rounded sum over rows of cost[row, assignment[row]] (so equal matchings
    always get bit-identical totals, whatever order a solver summed them in)."""
    return math.fsum(float(cost[row, col]) for row, col in enumerate(assignment))


def _solve(cost: np.ndarray, forced: dict[int, int], forbidden: frozenset[tuple[int, int]]) -> tuple[int, ...] | None:
    """The cheapest matching that uses every forced (row, col) edge and no forbidden one, or None."""
    n = cost.shape[0]
    rows = [r for r in range(n) if r not in forced]
    taken = set(forced.values())
    cols = [c for c in range(n) if c not in taken]
    assignment = dict(forced)
    if rows:
        sub = cost[np.ix_(rows, cols)].copy()
        col_pos = {c: j for j, c in enumerate(cols)}
        row_pos = {r: i for i, r in enumerate(rows)}
        for r, c in forbidden:
            if r in row_pos and c in col_pos:
                sub[row_pos[r], col_pos[c]] = np.inf
        try:
            sub_rows, sub_cols = linear_sum_assignment(sub)
        except ValueError:  # scipy: "cost matrix is infeasible" (every matching uses an inf edge)
            return None
        for i, j in zip(sub_rows, sub_cols):
            assignment[rows[i]] = cols[j]
    return tuple(assignment[r] for r in range(n))


def k_best_assignments(cost, k: int, maximize: bool = False) -> list[tuple[float, tuple[int, ...]]]:
    """The k best perfect matchings of the square matrix `cost` ([n, n] tensor or array).

    Returns up to k pairs (total, assignment), assignment[row] = column, total = the exactly
    rounded sum of cost[row, assignment[row]] (`math.fsum`). Sorted by total, ascending (or
    descending with maximize=True, which ranks -cost); fewer than k pairs when fewer feasible
    matchings exist. +inf entries mark forbidden edges (-inf with maximize=True); NaN is
    rejected.

    Murty's partition: pop the best solved subproblem (forced edges, forbidden edges) from a
    heap; for its matching a, with the free rows r_1 < r_2 < ... < r_m, add the children
    "force (r_1, a[r_1]) ... (r_{t-1}, a[r_{t-1}]), forbid (r_t, a[r_t])" for t < m (t = m
    would be infeasible), each solved with `scipy.optimize.linear_sum_assignment` on the
    reduced matrix with forbidden edges set to +inf; infeasible children are skipped. The
    children partition the parent's matchings minus a, so every matching is found once.
    Ties: the heap key is (total, assignment), so among equal totals the output order is the
    one Murty's partition discovers them in, a deterministic function of the matrix (not
    necessarily lexicographic over all tied matchings, which could need exponentially many
    extra pops).
    """
    if isinstance(cost, torch.Tensor):
        cost = cost.detach().cpu().to(torch.float64).numpy()
    cost = np.array(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"k_best_assignments needs a square [n, n] cost matrix, got shape {cost.shape}")
    if np.isnan(cost).any():
        raise ValueError("the cost matrix has NaN entries; use +inf (or -inf with maximize=True) for forbidden edges")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    work = -cost if maximize else cost
    if np.isneginf(work).any():
        raise ValueError("a forbidden edge must be +inf when minimising and -inf when maximising")

    results: list[tuple[float, tuple[int, ...]]] = []
    first = _solve(work, {}, frozenset())
    if k == 0 or first is None:
        return results
    heap = [(_assignment_cost(work, first), first, {}, frozenset())]
    while heap and len(results) < k:
        total, assignment, forced, forbidden = heapq.heappop(heap)
        results.append((-total if maximize else total, assignment))
        free = [r for r in range(len(assignment)) if r not in forced]
        child_forced = dict(forced)
        for row in free[:-1]:
            child_forbidden = forbidden | {(row, assignment[row])}
            child = _solve(work, child_forced, child_forbidden)
            if child is not None:
                heapq.heappush(heap, (_assignment_cost(work, child), child, dict(child_forced), child_forbidden))
            child_forced[row] = assignment[row]
    return results
