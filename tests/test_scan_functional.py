"""SCAN's building blocks: NT-Xent, neighbour mining and purity, clustering metrics."""
import itertools
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslzoo.functional import (
    adjusted_rand_index,
    cluster_accuracy,
    contingency,
    many_to_one_map,
    mine_neighbours,
    neighbour_purity,
    normalized_mutual_info,
    nt_xent,
    one_to_one_map,
    remapped_topk_accuracy,
)
from sslzoo.functional import neighbours as neighbours_module


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# NT-Xent


def _anchor_term(positive: float, negatives: list[float], t: float) -> float:
    """-log(exp(s_pos / t) / sum over the contrast set except self of exp(s / t))."""
    return -math.log(math.exp(positive / t) / sum(math.exp(s / t) for s in [positive, *negatives]))


def test_nt_xent_by_hand():
    # Unit rows a = (1, 0), b = (0, 1), c = (1, 1)/sqrt2, d = (1, -1)/sqrt2; pairs (a, c), (b, d).
    z0 = torch.tensor([[3.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    z1 = torch.tensor([[1.0, 1.0], [5.0, -5.0]], dtype=torch.float64)
    r, t = 1 / math.sqrt(2), 0.5
    ab, ac, ad, bc, bd, cd = 0.0, r, r, r, -r, 0.0
    terms = [
        _anchor_term(ac, [ab, ad], t),  # a
        _anchor_term(bd, [ab, bc], t),  # b
        _anchor_term(ac, [bc, cd], t),  # c
        _anchor_term(bd, [ad, cd], t),  # d
    ]
    assert nt_xent(z0, z1, temperature=t).item() == pytest.approx(sum(terms) / 4, rel=1e-12)
    assert nt_xent(z0, z1, temperature=t, anchors="first").item() == pytest.approx(sum(terms[:2]) / 2, rel=1e-12)


def _reference_terms(z0: torch.Tensor, z1: torch.Tensor, t: float) -> list[float]:
    """Per-anchor NT-Xent terms by explicit loops over the 2B normalised rows."""
    u = torch.nn.functional.normalize(torch.cat([z0, z1]), dim=1).tolist()
    b = len(z0)
    dot = lambda i, j: sum(x * y for x, y in zip(u[i], u[j]))  # noqa: E731
    return [
        _anchor_term(dot(i, (i + b) % (2 * b)), [dot(i, j) for j in range(2 * b) if j not in (i, (i + b) % (2 * b))], t)
        for i in range(2 * b)
    ]


def test_nt_xent_matches_loops_symmetry_scaling_and_first_anchors():
    z0, z1, t = _randn(6, 5, seed=1), _randn(6, 5, seed=2), 0.2
    terms = _reference_terms(z0, z1, t)
    both = nt_xent(z0, z1, t)
    first = nt_xent(z0, z1, t, anchors="first")
    assert both.item() == pytest.approx(np.mean(terms), rel=1e-12)
    assert first.item() == pytest.approx(np.mean(terms[:6]), rel=1e-12)
    torch.testing.assert_close(nt_xent(z1, z0, t), both)  # swapping the views
    torch.testing.assert_close(nt_xent(z0 * 7.0, z1 * 0.01, t), both)  # normalised inside
    torch.testing.assert_close((first + nt_xent(z1, z0, t, anchors="first")) / 2, both)


def test_nt_xent_validates_arguments():
    z = _randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, _randn(5, 3))
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z[0], z[1])
    with pytest.raises(ValueError, match="anchors"):
        nt_xent(z, z, anchors="second")
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, temperature=0.0)


def _nt_xent_worker(rank: int, world: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out = {}
        for anchors in ("both", "first"):
            z0, z1 = (_randn(8, 4, seed=s).chunk(world)[rank].clone().requires_grad_() for s in (3, 4))
            loss = nt_xent(z0, z1, 0.3, anchors=anchors)
            loss.backward()
            out[anchors] = (loss.item(), z0.grad.tolist(), z1.grad.tolist())
        z0, z1 = (_randn(8, 4, seed=s).chunk(world)[rank] for s in (3, 4))
        out["local"] = nt_xent(z0, z1, 0.3, gather=False).item()
        results.put((rank, out))
    finally:
        dist.destroy_process_group()


def test_two_processes_gather_to_the_whole_batch_loss():
    """The mean of the two processes' losses on half batches is the one-process loss on the
    whole batch; each process's input gradient, over the world size (DDP averages), is the
    whole-batch loss's gradient for its rows."""
    context = mp.get_context("spawn")
    results = context.Queue()
    port = 29500 + (os.getpid() + 500) % 1000
    processes = [context.Process(target=_nt_xent_worker, args=(r, 2, port, results)) for r in range(2)]
    for p in processes:
        p.start()
    outs = dict(results.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    for anchors in ("both", "first"):
        z0, z1 = (_randn(8, 4, seed=s).requires_grad_() for s in (3, 4))
        loss = nt_xent(z0, z1, 0.3, anchors=anchors)
        loss.backward()
        assert (outs[0][anchors][0] + outs[1][anchors][0]) / 2 == pytest.approx(loss.item(), rel=1e-10)
        for rank in (0, 1):
            torch.testing.assert_close(torch.tensor(outs[rank][anchors][1], dtype=torch.float64) / 2, z0.grad.chunk(2)[rank])
            torch.testing.assert_close(torch.tensor(outs[rank][anchors][2], dtype=torch.float64) / 2, z1.grad.chunk(2)[rank])
    for rank in (0, 1):
        shard = nt_xent(_randn(8, 4, seed=3).chunk(2)[rank], _randn(8, 4, seed=4).chunk(2)[rank], 0.3)
        assert outs[rank]["local"] == pytest.approx(shard.item(), rel=1e-12)


# Neighbours


def _brute_force(features: torch.Tensor, k: int) -> torch.Tensor:
    unit = features / features.norm(dim=1, keepdim=True)
    return (unit @ unit.T).argsort(dim=1, descending=True)[:, : k + 1]


def test_mine_neighbours_equals_brute_force_for_any_chunk_size():
    features = _randn(200, 16, seed=5)
    expected = _brute_force(features, 5)
    assert torch.equal(expected[:, 0], torch.arange(200))
    for chunk_size in (1, 7, 200, None):
        found = mine_neighbours(features, 5, chunk_size=chunk_size, backend="torch")
        assert found.dtype == torch.long and found.shape == (200, 6)
        assert torch.equal(found, expected), chunk_size


def test_mine_neighbours_validates_arguments(monkeypatch):
    features = _randn(10, 3)
    for k in (10, 11, 0):
        with pytest.raises(ValueError, match="k"):
            mine_neighbours(features, k)
    with pytest.raises(ValueError, match="backend"):
        mine_neighbours(features, 2, backend="annoy")
    with pytest.raises(ValueError, match="chunk_size"):
        mine_neighbours(features, 2, chunk_size=0, backend="torch")
    monkeypatch.setattr(neighbours_module, "_faiss", lambda: None)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        mine_neighbours(features, 2, backend="faiss")
    assert torch.equal(mine_neighbours(features, 2), _brute_force(features, 2))  # auto falls back to torch


def test_faiss_backend_finds_the_same_neighbours():
    pytest.importorskip("faiss")
    features = _randn(200, 16, seed=6, dtype=torch.float32)
    unit = features / features.norm(dim=1, keepdim=True)
    sims = unit @ unit.T
    reference = mine_neighbours(features, 5, backend="torch")
    for backend in ("faiss", "auto"):
        found = mine_neighbours(features, 5, backend=backend)
        assert found.shape == (200, 6) and torch.equal(found[:, 0], torch.arange(200))
        # Equal similarities in equal order (float32 sums may order a near-tie differently).
        torch.testing.assert_close(sims.gather(1, found), sims.gather(1, reference), atol=1e-6, rtol=0)
        assert (found == reference).float().mean() > 0.99


def test_neighbour_purity_by_hand():
    neighbours = torch.tensor([[0, 1, 2], [1, 0, 3], [2, 3, 0], [3, 2, 1]])
    assert neighbour_purity(neighbours, torch.tensor([0, 0, 1, 1])) == 0.5
    assert neighbour_purity(neighbours, torch.tensor([0, 0, 1, 1]), k=1) == 1.0
    # Unknown targets drop their pairs: (0,1) yes, (0,2) no, (1,0) yes, (2,0) no.
    assert neighbour_purity(neighbours, torch.tensor([0, 0, 1, -1])) == 0.5
    with pytest.raises(ValueError, match="known"):
        neighbour_purity(neighbours, torch.full((4,), -1))
    with pytest.raises(ValueError, match="k"):
        neighbour_purity(neighbours, torch.tensor([0, 0, 1, 1]), k=3)


# Clustering metrics


def _comb2(x: int) -> int:
    return math.comb(int(x), 2)


def _reference_nmi(u: np.ndarray, v: np.ndarray) -> float:
    """I(U; V) / mean(H(U), H(V)) straight from the label arrays."""
    n = len(u)
    cu, cv = np.unique(u, return_counts=True), np.unique(v, return_counts=True)
    if len(cu[0]) == len(cv[0]) == 1:
        return 1.0
    h = lambda counts: -sum(c / n * math.log(c / n) for c in counts)  # noqa: E731
    pu, pv = dict(zip(*cu)), dict(zip(*cv))
    mi = 0.0
    for a in pu:
        for b in pv:
            joint = int(((u == a) & (v == b)).sum())
            if joint:
                mi += joint / n * math.log(n * joint / (pu[a] * pv[b]))
    if mi <= 1e-15:
        return 0.0
    return mi / ((h(cu[1]) + h(cv[1])) / 2)


def _reference_ari(u: np.ndarray, v: np.ndarray) -> float:
    """(index - expected) / (max - expected), pair counts via C(n, 2)."""
    index = sum(_comb2(((u == a) & (v == b)).sum()) for a in np.unique(u) for b in np.unique(v))
    sum_u = sum(_comb2(c) for c in np.unique(u, return_counts=True)[1])
    sum_v = sum(_comb2(c) for c in np.unique(v, return_counts=True)[1])
    expected = sum_u * sum_v / _comb2(len(u))
    maximum = (sum_u + sum_v) / 2
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


def _label_pairs():
    rng = np.random.default_rng(0)
    for n, k, c in ((50, 3, 4), (200, 10, 10), (30, 6, 2), (7, 2, 3)):
        yield rng.integers(0, k, n), rng.integers(0, c, n), k, c
    truth = rng.integers(0, 5, 60)
    noisy = np.where(rng.random(60) < 0.2, rng.integers(0, 5, 60), truth)
    yield noisy, truth, 5, 5
    yield truth, truth, 5, 5  # perfect
    yield np.array([3, 1, 4, 0, 2])[truth], truth, 5, 5  # a relabelling
    yield np.zeros(20, dtype=int), truth[:20], 1, 5  # one cluster
    yield np.zeros(20, dtype=int), np.zeros(20, dtype=int), 3, 2  # one label each side, empty rows/columns
    yield np.arange(20), np.arange(20), 20, 20  # all singletons


def test_nmi_and_ari_match_the_definitions():
    for preds, targets, k, c in _label_pairs():
        counts = contingency(torch.from_numpy(preds), torch.from_numpy(targets), k, c)
        assert normalized_mutual_info(counts) == pytest.approx(_reference_nmi(preds, targets), abs=1e-12)
        assert adjusted_rand_index(counts) == pytest.approx(_reference_ari(preds, targets), abs=1e-12)


def test_nmi_and_ari_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    for preds, targets, k, c in _label_pairs():
        counts = contingency(torch.from_numpy(preds), torch.from_numpy(targets), k, c)
        assert normalized_mutual_info(counts) == pytest.approx(metrics.normalized_mutual_info_score(targets, preds), abs=1e-12)
        assert adjusted_rand_index(counts) == pytest.approx(metrics.adjusted_rand_score(targets, preds), abs=1e-12)


def test_perfect_and_relabelled_clusterings_score_one():
    truth = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    for preds in (truth, torch.tensor([2, 0, 1])[truth]):
        counts = contingency(preds, truth, 3, 3)
        assert normalized_mutual_info(counts) == pytest.approx(1.0) and adjusted_rand_index(counts) == pytest.approx(1.0)
        assert cluster_accuracy(preds, truth, 3) == 1.0


def test_contingency_sums_over_shards_and_rejects_bad_ids():
    preds, targets = torch.from_numpy(np.random.default_rng(1).integers(0, 4, (2, 40)))
    whole = contingency(preds, targets, 4, 4)
    assert torch.equal(contingency(preds[:15], targets[:15], 4, 4) + contingency(preds[15:], targets[15:], 4, 4), whole)
    with pytest.raises(ValueError, match="class ids"):
        contingency(preds, targets, 4, 3)
    with pytest.raises(ValueError, match="cluster ids"):
        contingency(preds - 1, targets, 4, 4)
    with pytest.raises(ValueError, match="non-empty"):
        normalized_mutual_info(torch.zeros(3, 3, dtype=torch.long))


def test_many_to_one_map_majority_and_ties():
    counts = torch.tensor([[3, 1, 0], [2, 2, 0], [0, 0, 0], [0, 1, 5], [0, 4, 4]])
    assert many_to_one_map(counts).tolist() == [0, 0, 0, 2, 1]


def test_one_to_one_map_is_the_best_permutation():
    rng = np.random.default_rng(2)
    for trial in range(5):
        preds, targets = (torch.from_numpy(rng.integers(0, 4, 30)) for _ in range(2))
        best = max(
            (torch.tensor(perm)[preds] == targets).double().mean().item() for perm in itertools.permutations(range(4))
        )
        assert cluster_accuracy(preds, targets, 4) == pytest.approx(best)
        mapping = one_to_one_map(contingency(preds, targets, 4, 4))
        assert sorted(mapping.tolist()) == [0, 1, 2, 3]
        assert (mapping[preds] == targets).double().mean().item() == pytest.approx(best)
    with pytest.raises(ValueError, match="many_to_one"):
        one_to_one_map(torch.ones(5, 3, dtype=torch.long))


def test_remapped_topk_accuracy_by_hand():
    # Clusters -> classes [1, 0, 1, 2]; class probabilities (0.35, 0.6, 0.05), (0.25, 0.15, 0.6), (0.1, 0.8, 0.1).
    probs = torch.tensor([[0.3, 0.35, 0.3, 0.05], [0.1, 0.25, 0.05, 0.6], [0.5, 0.1, 0.3, 0.1]])
    targets, mapping = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1, 2])
    accuracies = [remapped_topk_accuracy(probs, targets, mapping, k) for k in (1, 2, 3, 5)]
    assert accuracies == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    # Class 1 gets no cluster: it never counts as a top-k hit although its probability, 0, ties.
    assert remapped_topk_accuracy(torch.tensor([[0.5, 0.3, 0.2]]), torch.tensor([1]), torch.tensor([0, 0, 2]), k=5) == 0.0
    with pytest.raises(ValueError, match="K cluster classes"):
        remapped_topk_accuracy(probs, targets, torch.tensor([0, 1]))


def test_remapped_topk_accuracy_equals_scans_reordered_top5_under_one_to_one():
    probs = _randn(50, 8, seed=7).softmax(dim=1)
    targets = torch.from_numpy(np.random.default_rng(3).integers(0, 8, 50))
    mapping = one_to_one_map(contingency(probs.argmax(dim=1), targets, 8, 8))
    # SCAN's hungarian_evaluate: relabel the top-5 cluster ids, then compare with the targets.
    top5 = probs.topk(5, dim=1).indices
    reordered = torch.zeros_like(top5)
    for cluster, cls in enumerate(mapping.tolist()):
        reordered[top5 == cluster] = cls
    scan = (reordered == targets[:, None]).sum().item() / len(targets)
    assert remapped_topk_accuracy(probs, targets, mapping, k=5) == pytest.approx(scan)
