"""Boosted SSL's building blocks: initial targets, one clustering step, the clustering loss,
the phase schedule, Murty's k-best assignments and the cluster target table."""
import itertools
import math

import numpy as np
import pytest
import torch

from sslzoo.functional import (
    assign_batch_targets,
    boosted_phase,
    boosted_total_epochs,
    clustering_loss,
    initial_targets,
    k_best_assignments,
)
from sslzoo.modules import ClusterTargetTable


def _unit(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# Initial targets


@pytest.mark.parametrize("num_items, num_clusters, alpha", [(1000, 10, 1.0), (500, 10, 0.6), (120, 4, 0.5)])
def test_initial_targets_split_alpha_n_evenly_and_leave_the_rest_empty(num_items, num_clusters, alpha):
    targets = initial_targets(num_items, num_clusters, alpha, seed=3)
    assert targets.dtype == torch.long and targets.shape == (num_items,)
    per_cluster = round(alpha * num_items) // num_clusters
    assert torch.bincount(targets[targets >= 0], minlength=num_clusters).tolist() == [per_cluster] * num_clusters
    assert int((targets == -1).sum()) == num_items - per_cluster * num_clusters
    assert set(targets.unique().tolist()) <= set(range(-1, num_clusters))


def test_initial_targets_rounding_follows_the_code():
    # int(103 * 0.5) = 51 targets = 3 * 17: all 3 clusters 17; int(23 * 1.0) = 23 = 4 * 5 + 3: clusters 0-2 get 6.
    targets = initial_targets(103, 3, 0.5, seed=0)
    assert torch.bincount(targets[targets >= 0], minlength=3).tolist() == [17, 17, 17] and int((targets < 0).sum()) == 52
    targets = initial_targets(23, 4, 1.0, seed=0)
    assert torch.bincount(targets, minlength=4).tolist() == [6, 6, 6, 5]
    # int() truncates the float product, as the code's int(n * alpha): 100 * 0.29 = 28.999...
    assert int((initial_targets(100, 1, 0.29, seed=0) >= 0).sum()) == 28


def test_initial_targets_depend_only_on_their_arguments():
    torch.manual_seed(123)
    first = initial_targets(200, 5, 0.6, seed=7)
    torch.manual_seed(456)
    np.random.seed(1)
    assert torch.equal(first, initial_targets(200, 5, 0.6, seed=7))
    assert not torch.equal(first, initial_targets(200, 5, 0.6, seed=8))
    # shuffled: the targets are not in blocks
    assert not torch.equal(first[first >= 0], first[first >= 0].sort().values)


def test_initial_targets_reject_bad_arguments():
    for kwargs in (dict(alpha=0.0), dict(alpha=1.5), dict(num_clusters=0), dict(num_items=-1)):
        args = dict(num_items=10, num_clusters=2, alpha=1.0, seed=0) | kwargs
        with pytest.raises(ValueError):
            initial_targets(**args)


# One clustering step


def test_one_clustering_step_by_hand():
    # Normalised outputs f (rows are scaled below; the step normalises them):
    #   img0 = (1, 0, 0), img1 = (0.6, -0.8, 0), img2 = (0, -0.6, 0.8), img3 = (0, -1, 0).
    # Batch targets [2, -1, 0, 1]: the 3 held targets are e2, e0, e1; img1 holds none.
    # Unsquared distances ||f_i - e_k||_2 = sqrt(2 - 2 f_ik)    (squared, for comparison)
    #            e0      e1      e2                   e0    e1    e2
    #   img0   0       1.414   1.414       img0     0     2     2
    #   img1   0.894   1.897   1.414       img1     0.8   3.6   2
    #   img2   1.414   1.789   0.632       img2     2     3.2   0.4
    #   img3   1.414   2       1.414       img3     2     4     2
    # Best unsquared: e0->img0, e1->img1, e2->img2 = 0 + 1.897 + 0.632 = 2.530
    #   (next best e0->img0, e1->img3, e2->img2 = 2.632).
    # Best squared (the paper's Eq. 4): e0->img1, e1->img0, e2->img2 = 3.2 < 4.0: a different answer.
    # img3 is left without a target; ||f_3 - e_argmax||_2 = sqrt(2) >= 0.2: dropped.
    unit = _unit([1, 0, 0], [0.6, -0.8, 0], [0, -0.6, 0.8], [0, -1, 0])
    outputs = unit * torch.tensor([[3.0], [0.5], [2.0], [7.0]], dtype=torch.float64)
    step = assign_batch_targets(outputs, torch.tensor([2, -1, 0, 1]), rho=0.2)
    assert step.stored.tolist() == [0, 1, 2, -1]
    assert step.kept.tolist() == [True, True, True, False]
    assert step.targets.tolist() == [0, 1, 2, -1]  # img1's argmax is 0, but its stored target wins
    # float32 logits give the same answer
    assert assign_batch_targets(outputs.float(), torch.tensor([2, -1, 0, 1])).stored.tolist() == [0, 1, 2, -1]


def test_confidence_rule_uses_the_unsquared_distance_strictly_below_rho():
    # ||f - e_0||_2 = sqrt(2 - 2 f_0) = d  <=>  f_0 = 1 - d^2 / 2.
    def at_distance(d):
        f0 = 1 - d * d / 2
        return [f0, math.sqrt(1 - f0 * f0), 0.0]

    # d = 0.199 (kept), 0.201 (dropped), 0.3162 (squared 0.1 < rho, but unsquared > rho: dropped)
    outputs = _unit(at_distance(0.199), at_distance(0.201), at_distance(math.sqrt(0.1)), [0.0, 0.0, 5.0])
    step = assign_batch_targets(outputs, torch.full((4,), -1), rho=0.2)
    assert step.stored.tolist() == [-1, -1, -1, -1]  # pseudo-targets are never stored
    assert step.kept.tolist() == [True, False, False, True]
    assert step.targets.tolist() == [0, -1, -1, 2]
    assert assign_batch_targets(outputs, torch.full((4,), -1), rho=0.0).kept.tolist() == [False] * 4


def test_pseudo_target_only_for_images_left_without_a_stored_target():
    # Both images are confident for cluster 2; the single stored target (cluster 0) goes to the
    # closer one (img1: distance sqrt(2 - 2*0.1) vs sqrt(2) for img0); img0 gets the pseudo-target 2.
    outputs = _unit([0.0, 0.0, 1.0], [0.1, 0.0, 0.995])
    step = assign_batch_targets(outputs, torch.tensor([0, -1]))
    assert step.stored.tolist() == [-1, 0]
    assert step.targets.tolist() == [2, 0] and step.kept.tolist() == [True, True]


def test_steps_preserve_every_clusters_count():
    """Targets only move within the batch: per batch the multiset is unchanged, so globally too."""
    num_items, num_clusters = 96, 4
    table = ClusterTargetTable(num_clusters, alpha=0.75, seed=1, num_items=num_items)
    before = table.counts().clone()
    assert before.tolist() == [18] * 4
    generator = torch.Generator().manual_seed(0)
    switches = 0
    for _ in range(3):  # three "epochs" of batches of 16
        for positions in torch.randperm(num_items, generator=generator).split(16):
            held = table.lookup(positions)
            step = assign_batch_targets(torch.randn(16, num_clusters, generator=generator), held, rho=0.5)
            assert sorted(step.stored[step.stored >= 0].tolist()) == sorted(held[held >= 0].tolist())
            assert bool(step.kept[step.stored >= 0].all()) and int(step.kept.sum()) >= int((held >= 0).sum())
            switches += int((step.stored != held).sum())
            table.update(positions, step.stored)
    assert torch.equal(table.counts(), before) and int((table.targets == -1).sum()) == num_items - 72
    assert switches > 0


def test_assign_batch_targets_rejects_bad_inputs():
    with pytest.raises(ValueError, match="cluster ids"):
        assign_batch_targets(torch.randn(3, 2), torch.tensor([0, 2, -1]))
    with pytest.raises(ValueError, match=r"\[B\]"):
        assign_batch_targets(torch.randn(3, 2), torch.tensor([0, 1]))


# Clustering loss


def test_clustering_loss_by_hand():
    # r = 2 augmentations, B = 3 images, K = 2; img1 dropped, targets img0 -> 1, img2 -> 0.
    #   aug0 img0 (3, 4) -> (0.6, 0.8) vs e1: 0.36 + 0.04 = 0.4;  aug0 img2 (2, 0) -> (1, 0) vs e0: 0
    #   aug1 img0 (0, 5) -> (0, 1)     vs e1: 0;                  aug1 img2 (0, -1)         vs e0: 1 + 1 = 2
    # nn.MSELoss: 2.4 / (|S| r K = 2 * 2 * 2) = 0.3 (the paper's Eq. 5 would be 2.4 / 4 = 0.6).
    aug = torch.tensor([[[3.0, 4.0], [9.0, -9.0], [2.0, 0.0]], [[0.0, 5.0], [-1.0, 8.0], [0.0, -1.0]]], requires_grad=True)
    targets, kept = torch.tensor([1, -1, 0]), torch.tensor([True, False, True])
    loss = clustering_loss(aug, targets, kept)
    assert loss.item() == pytest.approx(0.3)
    assert clustering_loss(aug.reshape(6, 2), targets).item() == pytest.approx(0.3)  # [r*B, K], kept = targets >= 0
    loss.backward()
    assert torch.equal(aug.grad[:, 1], torch.zeros(2, 2)) and aug.grad[:, [0, 2]].abs().sum() > 0


def test_clustering_loss_with_nothing_kept_is_a_differentiable_zero():
    aug = torch.randn(6, 3, requires_grad=True)
    loss = clustering_loss(aug, torch.full((2,), -1))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(aug.grad, torch.zeros(6, 3))


def test_clustering_loss_rejects_kept_images_without_a_target():
    with pytest.raises(ValueError, match="ClusteringStep.targets"):
        clustering_loss(torch.randn(2, 2, 3), torch.tensor([0, -1]), torch.tensor([True, True]))
    with pytest.raises(ValueError, match="divisible"):
        clustering_loss(torch.randn(5, 3), torch.tensor([0, 1]))


# Phase schedule


def test_boosted_phase_schedule():
    # 2 warm-up epochs, then rounds of 3 SSL epochs + 1 RotNet + 1 clustering epoch.
    expected = [("warmup", -1)] * 2
    for round_index in range(3):
        expected += [("ssl", round_index)] * 3 + [("rotnet", round_index), ("clustering", round_index)]
    assert [boosted_phase(e, warmup_epochs=2, ssl_epochs=3) for e in range(len(expected))] == expected
    assert boosted_total_epochs(3, warmup_epochs=2, ssl_epochs=3) == len(expected)
    # Without RotNet (SVHN): no warm-up, rounds of 5 SSL + 1 clustering epoch.
    no_rotnet = [boosted_phase(e, 0, 5, rotnet=False) for e in range(12)]
    assert no_rotnet == [("ssl", 0)] * 5 + [("clustering", 0)] + [("ssl", 1)] * 5 + [("clustering", 1)]
    assert boosted_total_epochs(200, 0, 5, rotnet=False) == 1200
    # The paper's CIFAR-10 run: 20 warm-up epochs, 200 rounds of 10 + 2.
    assert boosted_phase(20 + 12 * 199 + 11, 20, 10) == ("clustering", 199)
    assert boosted_phase(0, 0, 0) == ("rotnet", 0) and boosted_phase(1, 0, 0) == ("clustering", 0)
    with pytest.raises(ValueError):
        boosted_phase(-1, 2, 3)


# Murty's k best assignments


def _brute_force(cost: np.ndarray) -> list[tuple[float, tuple[int, ...]]]:
    n = cost.shape[0]
    return sorted((math.fsum(cost[r, c] for r, c in enumerate(p)), p) for p in itertools.permutations(range(n)))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_k_best_assignments_match_brute_force(n):
    rng = np.random.default_rng(n)
    for trial in range(3 if n < 6 else 1):
        cost = rng.normal(size=(n, n))
        expected = _brute_force(cost)
        for k in sorted({1, 2, n, math.factorial(n) // 2, math.factorial(n), math.factorial(n) + 5}):
            got = k_best_assignments(cost, k)
            assert got == expected[:k]  # continuous costs: no ties, so the order is unique


def test_k_best_assignments_with_ties_enumerate_all_matchings_in_cost_order():
    rng = np.random.default_rng(0)
    cost = rng.integers(0, 3, size=(5, 5)).astype(float)
    expected = _brute_force(cost)
    got = k_best_assignments(torch.from_numpy(cost), 120)
    assert [c for c, _ in got] == [c for c, _ in expected]
    assert {a for _, a in got} == {a for _, a in expected}
    assert all(math.fsum(cost[r, c] for r, c in enumerate(a)) == total for total, a in got)
    for k in (7, 30):  # a prefix of the full ranking, and deterministic
        assert k_best_assignments(cost, k) == got[:k] == k_best_assignments(cost, k)
    assert k_best_assignments(np.zeros((4, 4)), 24)[0][0] == 0.0 and len(k_best_assignments(np.zeros((4, 4)), 30)) == 24


def test_k_best_assignments_forbidden_edges_maximize_and_edge_cases():
    rng = np.random.default_rng(1)
    cost = rng.normal(size=(4, 4))
    cost[0, 0] = cost[1, 1] = cost[2, 3] = np.inf
    feasible = [(c, p) for c, p in _brute_force(cost) if math.isfinite(c)]
    assert k_best_assignments(cost, 100) == feasible
    assert k_best_assignments(np.full((2, 2), np.inf), 3) == []
    gains = rng.normal(size=(4, 4))
    best = sorted(_brute_force(-gains))[:5]
    assert k_best_assignments(gains, 5, maximize=True) == [(-c, p) for c, p in best]
    assert k_best_assignments(np.zeros((0, 0)), 2) == [(0.0, ())]
    assert k_best_assignments(cost, 0) == []
    with pytest.raises(ValueError, match="square"):
        k_best_assignments(np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match="NaN"):
        k_best_assignments(np.array([[np.nan]]), 1)


# Cluster target table


def test_cluster_target_table_lookup_update_and_state_dict_round_trip():
    table = ClusterTargetTable(3, alpha=0.5, seed=4, num_items=12)
    assert torch.equal(table.targets, initial_targets(12, 3, 0.5, seed=4))
    assert table.counts().tolist() == [2, 2, 2]
    positions = torch.tensor([5, 0, 11])
    table.update(positions, torch.tensor([2, -1, 0]))
    assert table.lookup(positions).tolist() == [2, -1, 0]
    restored = ClusterTargetTable(3, alpha=0.5, seed=99)  # empty until loaded
    assert len(restored) == 0
    restored.load_state_dict(table.state_dict())
    assert torch.equal(restored.targets, table.targets) and "targets" in table.state_dict()
    assert torch.equal(restored.counts(), table.counts())


def test_cluster_target_table_rejects_duplicates_and_bad_positions():
    table = ClusterTargetTable(2, num_items=6)
    with pytest.raises(ValueError, match="same unlabeled position twice"):
        table.update(torch.tensor([1, 1]), torch.tensor([0, 1]))
    with pytest.raises(IndexError):
        table.lookup(torch.tensor([6]))
    with pytest.raises(ValueError, match="cluster ids"):
        table.update(torch.tensor([1]), torch.tensor([2]))
    with pytest.raises(RuntimeError, match="reset"):
        ClusterTargetTable(2).lookup(torch.tensor([0]))


def test_cluster_target_table_update_is_the_same_on_every_rank(monkeypatch):
    """Two ranks with uneven batches (3 and 2 items); the all-gather is simulated in-process
    (a spawned gloo pair takes ~20 s to import the package on this machine): each rank's
    table must end up with both ranks' writes."""
    from sslzoo.modules import cluster_target_table

    per_rank = [(torch.tensor([0, 4, 9]), torch.tensor([1, 1, -1])), (torch.tensor([2, 7]), torch.tensor([0, 2]))]
    tables = []
    for rank in range(2):
        gathered = iter([torch.cat([p for p, _ in per_rank]), torch.cat([t for _, t in per_rank])])
        own = iter(per_rank[rank])

        def fake_gather(tensor, gathered=gathered, own=own):
            assert torch.equal(tensor, next(own))  # each rank contributes its own batch
            return next(gathered)

        monkeypatch.setattr(cluster_target_table, "all_gather_uneven", fake_gather)
        table = ClusterTargetTable(3, alpha=1.0, seed=0, num_items=10)
        table.update(*per_rank[rank])
        tables.append(table.targets)
    expected = initial_targets(10, 3, 1.0, seed=0)
    expected[torch.tensor([0, 4, 9, 2, 7])] = torch.tensor([1, 1, -1, 0, 2])
    assert torch.equal(tables[0], expected) and torch.equal(tables[1], expected)


# Review fixes (issue 15): each test pins the official behaviour with numbers from its formula.


def test_official_permutation_cost_weights_the_first_four_unrotated_rows_and_sums():
    """get_perm_cost_matrix: a class's batch is rotation-major, rows [:4] weigh 0.1, the rest 0.9, summed."""
    from sslzoo.functional import class_output_costs
    from sslzoo.functional.permutations import official_row_weights

    # class 0: 5 images (dataset indices 9, 2, 7, 11, 5) x 4 rotations; class 1: 1 image (index 4)
    indices = torch.tensor([9, 2, 7, 11, 5]).repeat_interleave(4).tolist() + [4] * 4
    rotations = torch.arange(4).repeat(6)
    labels = torch.tensor([0] * 20 + [1] * 4)
    weights = official_row_weights(torch.tensor(indices), labels, rotations)
    first_four = {2, 5, 7, 9}  # the 4 smallest indices of class 0; index 11 is the fifth
    expected = [0.1 if (i in first_four or i == 4) and r == 0 else 0.9 for i, r in zip(indices, rotations.tolist())]
    assert weights.tolist() == pytest.approx(expected)
    # each row's L1 distance to e_0 is 2 for logits (0, 1): cost[0, 0] = 2 * (4 * 0.1 + 16 * 0.9) = 29.6
    logits = torch.tensor([[0.0, 1.0]]).repeat(24, 1)
    cost = class_output_costs(logits, labels, 2, weights)
    assert cost[0, 0].item() == pytest.approx(29.6) and cost[0, 1].item() == pytest.approx(0.0)
    assert cost[1, 0].item() == pytest.approx(2 * (0.1 + 3 * 0.9))
    assert class_output_costs(logits, labels, 2)[0, 0].item() == pytest.approx(2.0)  # "mean": per-class mean


def test_rotnet_mlp_head_is_the_official_build_rotnet():
    from sslzoo.methods.boosted import build_rotation_head

    head = build_rotation_head(128, "mlp")
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [tuple(m.weight.shape) for m in head if isinstance(m, torch.nn.Linear)] == [(128, 128), (128, 128), (4, 128)]
    assert sum(p.numel() for p in head.parameters()) == 34052  # the official rot_net of WRN-28-2
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in head if isinstance(m, torch.nn.Linear))
    assert isinstance(build_rotation_head(128, "linear"), torch.nn.Linear)


def test_ssclustering_wrn_is_mish_psbatchnorm_with_the_official_parameter_count():
    from sslzoo.nets import build_backbone
    from sslzoo.nets.wide_resnet import ConstantShift

    net = build_backbone("wrn_28_2_mish")
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.eps == 1e-5 and bn.momentum == 0.001 for bn in bns)
    assert sum(isinstance(m, torch.nn.Mish) for m in net.modules()) == len(bns)
    assert all(m.shift == 0.1 for m in net.modules() if isinstance(m, ConstantShift))
    # The official features hold 1,466,320 parameters, 192 of them in the two transition units'
    # bn1 that their forward computes but never uses (BasicBlock: conv1(x) when not equalInOut).
    assert sum(p.numel() for p in net.parameters()) == 1466320 - 2 * (32 + 64)
    # PSBatchNorm: BatchNorm2d(x) + 0.1, i.e. (x - mean) / sqrt(var + eps) * w + b + 0.1
    norm_act = net.final_norm_act.eval()
    norm_act[0].running_mean.fill_(1.0)
    norm_act[0].running_var.fill_(4.0)
    x = torch.full((1, 128, 1, 1), 3.0)
    z = (3.0 - 1.0) / (4.0 + 1e-5) ** 0.5 + 0.1
    assert norm_act(x).flatten()[0].item() == pytest.approx(z * math.tanh(math.log1p(math.exp(z))), rel=1e-6)
    assert build_backbone("wrn_37_2_mish").feature_dim == 256


def test_rotation_view_crops_each_rotation_on_its_own_and_does_not_flip():
    from datamodules.info import CIFAR10
    from datamodules.views.compose import View
    from datamodules.views.geometry import RandomHorizontalFlip
    from datamodules.views.rotation import RotationView, rotation_view

    view = rotation_view(CIFAR10)
    assert not any(isinstance(op, RandomHorizontalFlip) for op in view.base.augmentations)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    identity = RotationView(View([], lambda x: x.float()))
    out = identity(img)  # no crop: entry k is PIL's rotate(90 k) = rot90 counter-clockwise
    assert torch.equal(out[1], torch.rot90(img, 1, dims=(-2, -1)).float())
    torch.manual_seed(0)
    out = view(img)
    unrotated = [torch.rot90(out[k], -k, dims=(-2, -1)) for k in range(4)]
    assert not all(torch.equal(unrotated[0], u) for u in unrotated[1:])  # four different crops
    shared = rotation_view(CIFAR10, shared_augmentation=True)(img)
    assert all(torch.equal(torch.rot90(shared[k], -k, dims=(-2, -1)), shared[0]) for k in range(4))


# CTAugment (google-research/fixmatch libml/ctaugment.py)


def test_ctaugment_ops_and_bins_are_fixmatchs():
    from datamodules.views.ctaugment import NUM_RATES, OPS

    bins = {name: b for name, b, _ in OPS}
    assert len(OPS) == 19 and bins["identity"] == () and bins["posterize"] == (8,) and bins["rescale"] == (17, 6)
    assert all(b == (17,) for name, b in bins.items() if name not in ("identity", "posterize", "rescale"))
    assert NUM_RATES == 16 * 17 + 8 + 17 + 6


def test_ctaugment_rate_update_and_probabilities_by_hand():
    from datamodules.views.ctaugment import CTAugmentRates, OFFSETS, OP_NAMES, probe_proximity, rate_to_probabilities

    rates = CTAugmentRates()
    brightness, rescale = OP_NAMES.index("brightness"), OP_NAMES.index("rescale")
    # value 0.5 of 17 bins -> bin int(0.5 * 17 * 0.999) = 8; two probes on it, applied in order
    policies = torch.tensor([[[brightness, 0.5, -1], [rescale, 0.0, 0.99]], [[brightness, 0.5, -1], [OP_NAMES.index("identity"), -1, -1]]])
    rates.update(policies, torch.tensor([0.2, 0.5]))
    first = 1 * 0.99 + 0.2 * 0.01
    assert rates.rates[OFFSETS[brightness][0] + 8].item() == pytest.approx(first * 0.99 + 0.5 * 0.01, rel=1e-6)
    assert rates.rates[OFFSETS[rescale][0] + 0].item() == pytest.approx(first, rel=1e-6)
    assert rates.rates[OFFSETS[rescale][1] + 5].item() == pytest.approx(first, rel=1e-6)  # int(0.99 * 6 * 0.999) = 5
    assert float(rates.rates.sum()) == pytest.approx(303 - 3 + 2 * first + first * 0.99 + 0.005, rel=1e-6)  # 3 bins moved
    # rate_to_p: (rate + 0.01) / max, zero below 0.8, normalised
    p = rate_to_probabilities(torch.tensor([1.0, 0.5, 0.9]))
    assert p.tolist() == pytest.approx([1.0 / (1.0 + 0.91 / 1.01), 0.0, (0.91 / 1.01) / (1.0 + 0.91 / 1.01)])
    # proximity 1 - |p - onehot|_1 / 2
    assert probe_proximity(torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([0])).item() == pytest.approx(0.7)


def test_ctaugment_draws_only_bins_above_the_threshold_and_probes_uniformly():
    from datamodules.views.ctaugment import NUM_RATES, OFFSETS, OPS, sample_policy

    rates = torch.full((NUM_RATES,), 0.1)
    for op, (_, bins, _) in enumerate(OPS):
        for offset, n in zip(OFFSETS[op], bins):
            rates[offset + 3 % n] = 1.0  # one good bin per argument: bin 3
    torch.manual_seed(0)
    values = torch.cat([sample_policy(rates, probe=False)[:, 1:].flatten() for _ in range(200)])
    used = values[values >= 0]
    assert len(used) > 300 and bool(((used * 17 >= 3) & (used * 17 < 4) | (used * 8 >= 3) & (used * 8 < 4) | (used * 6 >= 3) & (used * 6 < 4)).all())
    probes = torch.cat([sample_policy(rates, probe=True)[:, 1:].flatten() for _ in range(200)])
    probes = probes[probes >= 0]
    assert float((probes < 0.1).float().mean()) > 0.05  # uniform, not the learned bins


def test_ctaugment_cutout_is_a_gray_square_of_half_the_side():
    from datamodules.views.ctaugment import _cutout, _to_pil, _to_tensor

    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    torch.manual_seed(3)
    cx, cy = int(torch.randint(32, ())), int(torch.randint(32, ()))
    torch.manual_seed(3)
    out = _to_tensor(_cutout(_to_pil(img), 1.0))  # size 1 + int(32 * 0.499) = 16: [c - 8, c + 8) clipped
    expected = torch.zeros_like(img)
    expected[:, max(0, cy - 8):min(32, cy + 8), max(0, cx - 8):min(32, cx + 8)] = 127
    assert torch.equal(out, expected)


class _RatesSeen(torch.utils.data.Dataset):
    def __init__(self):
        from datamodules.views.ctaugment import CTAugment

        self.view = CTAugment()

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.view.rates.sum()


def test_published_rates_reach_running_dataloader_workers():
    from datamodules.views.ctaugment import CTAugmentRates

    rates = CTAugmentRates()
    rates.publish()
    loader = torch.utils.data.DataLoader(_RatesSeen(), batch_size=4, num_workers=1, persistent_workers=True)
    assert next(iter(loader)).tolist() == [303.0] * 4
    rates.rates.fill_(0.5)
    rates.publish()  # the same worker process, started before, reads the new values
    assert next(iter(loader)).tolist() == [151.5] * 4
