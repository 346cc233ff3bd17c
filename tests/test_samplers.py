import torch

from datamodules.samplers import ShardedEvalSampler, StreamSampler


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def _indices(sampler, epoch):
    return [i for i, _ in _epoch(sampler, epoch)]


def test_ranks_get_disjoint_shards_that_cover_the_single_process_indices():
    single = StreamSampler(100, 48, seed=3)
    ranks = [StreamSampler(100, 24, seed=3, rank=r, world_size=2) for r in range(2)]
    for epoch in range(3):
        shards = [_indices(s, epoch) for s in ranks]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == sorted(_indices(single, epoch))


def test_order_depends_on_seed_and_epoch_only():
    a, b = StreamSampler(50, 20, seed=1), StreamSampler(50, 20, seed=1)
    torch.manual_seed(99)  # global RNG must not matter
    assert _indices(a, 2) == _indices(b, 2)
    assert _indices(a, 0) != _indices(a, 1)
    assert _indices(a, 0) != _indices(StreamSampler(50, 20, seed=2), 0)


def test_small_set_is_cycled_through_whole_permutations():
    sampler = StreamSampler(7, 21, seed=0)
    items = _indices(sampler, 0)
    assert len(items) == 21
    for k in range(3):  # each block of 7 is a permutation
        assert sorted(items[7 * k : 7 * (k + 1)]) == list(range(7))


def test_epochs_continue_the_stream():
    sampler = StreamSampler(10, 4, seed=0)
    stream = torch.cat([sampler._permutation(p) for p in range(2)]).tolist()
    assert _indices(sampler, 0) + _indices(sampler, 1) + _indices(sampler, 2)[:2] == stream[:10]


def test_eval_shards_cover_everything_once():
    shards = [list(ShardedEvalSampler(11, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert [len(ShardedEvalSampler(11, r, 3)) for r in range(3)] == [4, 4, 3]


def test_item_seeds_follow_the_stream_position_not_the_rank():
    single = StreamSampler(100, 40, seed=3)
    ranks = [StreamSampler(100, 20, seed=3, rank=r, world_size=2) for r in range(2)]
    for epoch in range(2):
        pairs = dict((i, s) for i, s in _epoch(single, epoch))
        for sampler in ranks:
            for i, s in _epoch(sampler, epoch):
                assert pairs[i] == s
    seeds = [s for _, s in _epoch(single, 0)] + [s for _, s in _epoch(single, 1)]
    assert len(set(seeds)) == len(seeds)


def test_resume_skips_the_consumed_part_of_that_epoch_only():
    full = _epoch(StreamSampler(50, 20, seed=1), 2)
    sampler = StreamSampler(50, 20, seed=1)
    sampler.resume_at(2, 8)
    assert _epoch(sampler, 2) == full[8:]
    assert _epoch(sampler, 2) == full  # one-shot
    sampler.resume_at(1, 8)
    assert len(_epoch(sampler, 2)) == 20  # a stale epoch does not skip
