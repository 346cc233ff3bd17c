"""Sinkhorn, the feature queue and DINO's centre: math, stability, DDP and state."""
import importlib
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslzoo.functional import sharpened_targets, sinkhorn
from sslzoo.modules import Center, FeatureQueue


def swav_reference(scores: np.ndarray, epsilon: float, iterations: int) -> np.ndarray:
    """SwAV's distributed_sinkhorn, single process, written directly in float64 numpy."""
    q = np.exp(scores / epsilon).T  # K x B
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    return (q * b).T


def _scores(b=12, k=5, seed=0, scale=1.0):
    return torch.randn(b, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def test_sinkhorn_matches_swav_reference():
    scores = _scores()
    for iterations in (1, 3, 20):
        expected = swav_reference(scores.numpy(), 0.5, iterations)
        np.testing.assert_allclose(sinkhorn(scores, 0.5, iterations).double().numpy(), expected, rtol=1e-5, atol=1e-7)


def test_sinkhorn_marginals():
    scores = _scores(b=40, k=4) + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)  # prototype 0 is favoured
    codes = sinkhorn(scores, epsilon=0.5, iterations=3)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(40))  # every sample: one unit of mass
    softmax_load = (scores / 0.5).softmax(dim=1).sum(dim=0)
    load = codes.sum(dim=0)  # ~equal partition (10 each) after 3 iterations, unlike the softmax
    assert softmax_load[0] > 18 and (load - 10).abs().max() < 1.5
    converged = sinkhorn(_scores(b=40, k=4), epsilon=0.5, iterations=200)
    torch.testing.assert_close(converged.sum(dim=0), torch.full((4,), 10.0), rtol=1e-4, atol=1e-4)


def test_converged_codes_solve_the_entropic_transport_problem():
    """At convergence Q = diag(u) exp(S / eps) diag(v) with the two marginals (the optimality
    conditions of max Tr(Q^T S) + eps H(Q) over the transport polytope): log Q - S / eps must
    be a sum of a per-sample and a per-prototype term."""
    scores, eps = _scores(b=9, k=3), 0.3
    codes = sinkhorn(scores, eps, iterations=500).double()
    residual = codes.log() - scores / eps
    centred = residual - residual.mean(dim=1, keepdim=True) - residual.mean(dim=0, keepdim=True) + residual.mean()
    assert centred.abs().max() < 1e-4
    torch.testing.assert_close(codes.sum(dim=0), torch.full((3,), 3.0, dtype=torch.float64), atol=1e-4, rtol=0)


def test_sinkhorn_is_stable_at_small_epsilon_with_large_scores():
    scores = _scores(b=16, k=6, scale=50.0).float()
    codes = sinkhorn(scores, epsilon=0.02, iterations=3)
    assert torch.isfinite(codes).all()
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(16))
    # The direct exp(S / eps) of the reference overflows here.
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(swav_reference(scores.double().numpy() * 10, 0.02, 3)).all()


def test_exponential_and_log_space_iterations_agree():
    """The plain exponential form (SwAV's, fast) runs below EXP_SPAN and the log form above it;
    where both are safe they give the same codes."""
    module = importlib.import_module("sslzoo.functional.sinkhorn")  # the module, not the function it exports
    scores = _scores(b=64, k=10, scale=0.5).float()  # cosine-like span: 2 * 0.5 * ~3 / 0.05 < 60
    log_q = scores / 0.05
    assert float(log_q.max() - log_q.min()) < module.EXP_SPAN
    for iterations in (0, 1, 3):
        torch.testing.assert_close(sinkhorn(scores, 0.05, iterations), module._sinkhorn_log(log_q, iterations, False), rtol=1e-5, atol=1e-7)


def test_sinkhorn_rejects_non_positive_epsilon():
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(_scores(), 0.0)


def test_feature_queue_order_fill_and_wrap():
    queue = FeatureQueue(5, 2)
    assert not queue.full and queue.fill == 0
    queue.push(torch.tensor([[1.0, 1], [2, 2]]))
    assert queue.fill == 0.4
    torch.testing.assert_close(queue.ordered()[:, 0], torch.tensor([2.0, 1]))
    queue.push(torch.tensor([[3.0, 3], [4, 4], [5, 5], [6, 6]]))
    assert queue.full
    torch.testing.assert_close(queue.ordered()[:, 0], torch.tensor([6.0, 5, 4, 3, 2]))  # newest first; 1 dropped
    queue.push(torch.arange(7.0).repeat(2, 1).T + 10)  # more than the queue holds: keep the newest 5
    torch.testing.assert_close(queue.ordered()[:, 0], torch.tensor([16.0, 15, 14, 13, 12]))


def test_feature_queue_state_survives_a_checkpoint():
    queue = FeatureQueue(4, 3)
    queue.push(torch.randn(3, 3))
    restored = FeatureQueue(4, 3)
    restored.load_state_dict(queue.state_dict())
    torch.testing.assert_close(restored.ordered(), queue.ordered())
    assert int(restored.count) == 3 and int(restored.position) == 3
    with pytest.raises(ValueError, match="not divisible"):
        queue.shard(0, 3)


def test_center_is_an_ema_of_batch_means():
    center = Center(2, momentum=0.9)
    center.update(torch.tensor([[1.0, 3.0], [3.0, 5.0]]))
    torch.testing.assert_close(center.value, torch.tensor([[0.2, 0.4]]))
    # DINO's targets centre with it: softmax((x - c) / T)
    torch.testing.assert_close(sharpened_targets(torch.tensor([[1.0, 1.0]]), center.value, 1.0), torch.tensor([[0.8, 0.6]]).softmax(dim=-1))


def _distributed_worker(rank: int, world: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        scores = _scores(b=16, k=4, seed=3).float()
        shard = scores.chunk(world)[rank]
        codes = sinkhorn(shard, 0.1, 3)
        gathered = [torch.empty_like(codes) for _ in range(world)]
        dist.all_gather(gathered, codes)
        queue = FeatureQueue(6, 1)
        queue.push(torch.tensor([[float(rank)]]))
        queue.push(torch.tensor([[10.0 + rank]]))
        center = Center(4, momentum=0.5)
        center.update(shard)
        if rank == 0:  # plain lists: shared-memory tensors would vanish with this process
            results.put((torch.cat(gathered).tolist(), queue.ordered().tolist(), center.value.tolist()))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_for_sinkhorn_queue_and_center():
    """Sinkhorn all-reduces its sums, the queue all-gathers before enqueueing, the centre
    all-reduces its mean: 2 processes on half batches give 1 process's results on the whole."""
    context = mp.get_context("spawn")
    results = context.Queue()
    port = 29500 + os.getpid() % 1000
    processes = [context.Process(target=_distributed_worker, args=(r, 2, port, results)) for r in range(2)]
    for p in processes:
        p.start()
    codes, queued, centre = (torch.tensor(x) for x in results.get(timeout=120))
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    scores = _scores(b=16, k=4, seed=3).float()
    torch.testing.assert_close(codes, sinkhorn(scores, 0.1, 3), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(queued[:, 0], torch.tensor([11.0, 10, 1, 0]))  # rank order within a push, newest first
    single = Center(4, momentum=0.5)
    single.update(scores)
    torch.testing.assert_close(centre, single.value)
