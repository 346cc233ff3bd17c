import math

import pytest
import torch

from sslzoo.functional import (
    cluster_accuracy,
    confident_pseudo_labels,
    fixmatch_cosine,
    hungarian_match,
    masked_cross_entropy,
    sigmoid_rampup,
    soft_cross_entropy,
    softmax_kl,
    softmax_mse,
    warmup_cosine,
)


def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected)


def test_fixmatch_unlabeled_loss_divides_by_all_samples():
    # Two of four samples confident: loss = (CE_0 + CE_2) / 4, not / 2.
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0], [math.log(3.0), 0.0], [2.0, 0.0]])
    targets = torch.tensor([1, 0, 0, 1])
    mask = torch.tensor([True, False, True, False])
    expected = (-math.log(0.75) - math.log(0.75)) / 4
    assert masked_cross_entropy(logits, targets, mask).item() == pytest.approx(expected)
    soft = torch.nn.functional.one_hot(targets, 2).float()
    assert masked_cross_entropy(logits, soft, mask).item() == pytest.approx(expected)


def test_pseudo_labels_threshold_is_inclusive_and_detached():
    logits = torch.tensor([[math.log(0.95), math.log(0.05)], [0.0, 0.0]], requires_grad=True)
    labels, mask, probs = confident_pseudo_labels(logits, 0.95 - 1e-7)
    assert labels.tolist() == [0, 0] and mask.tolist() == [True, False]
    assert not probs.requires_grad


def test_softmax_mse_by_hand_and_gradient_only_through_student():
    student = torch.tensor([[0.0, 0.0]], requires_grad=True)  # softmax [0.5, 0.5]
    teacher = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)  # [0.25, 0.75]
    loss = softmax_mse(student, teacher)
    assert loss.item() == pytest.approx((0.25**2 + 0.25**2) / 2)
    loss.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_softmax_kl_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[0.0, math.log(3.0)]])
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert softmax_kl(student, teacher).item() == pytest.approx(expected)


def test_sigmoid_rampup():
    assert sigmoid_rampup(0, 5) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(2.5, 5) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(7, 5) == 1.0 and sigmoid_rampup(3, 0) == 1.0


def test_schedules():
    assert fixmatch_cosine(0, 100) == 1.0
    assert fixmatch_cosine(100, 100) == pytest.approx(math.cos(7 * math.pi / 16))
    assert warmup_cosine(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert warmup_cosine(10, 100, warmup_steps=10) == pytest.approx(1.0)
    assert warmup_cosine(100, 100, warmup_steps=10, final_fraction=0.01) == pytest.approx(0.01)


def test_cluster_accuracy_with_permuted_ids():
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([2, 2, 0, 0, 1, 0])  # cluster 2->0, 0->1, 1->2; one mistake
    assert hungarian_match(preds, targets) == {0: 1, 1: 2, 2: 0}
    assert cluster_accuracy(preds, targets) == pytest.approx(5 / 6)
    from sslzoo.modules.cluster_accuracy import ClusterAccuracy

    metric = ClusterAccuracy(3)
    metric.update(preds[:3], targets[:3])
    metric.update(preds[3:], targets[3:])
    assert metric.compute().item() == pytest.approx(5 / 6)


def test_linear_decay_schedule():
    from sslzoo.functional import linear_decay

    assert linear_decay(500, 1200, decay_start=5 / 6) == 1.0
    assert linear_decay(1100, 1200, decay_start=5 / 6) == pytest.approx(0.5)
    assert linear_decay(1200, 1200, decay_start=5 / 6) == 0.0
