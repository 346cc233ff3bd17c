import math

import pytest
import torch

import tiny
from sslzoo.functional import local_clustering_loss, pair_clustering_loss, pair_distances
from sslzoo.methods import LCMeanTeacher


def test_pair_loss_by_hand_with_cut_off():
    a = torch.tensor([[0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [2.0, 0.0], [10.0, 0.0]])
    # d = mean of squares: 1, 2, 50 -> with eps=3 the third pair is cut off
    expected = (1 * math.exp(-1 / 3) + 2 * math.exp(-2 / 3)) / 2
    assert pair_clustering_loss(a, b, 3.0).item() == pytest.approx(expected)


def test_lc_loss_includes_unlabeled_self_pairs_in_the_denominator():
    labeled = torch.tensor([[0.0, 0.0]])
    unlabeled = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    # L-U: two pairs at d=1. U-U: four pairs at d=0 (numerator 0).
    expected = 2 * math.exp(-1 / 2) / 2 + 0.0
    assert local_clustering_loss(labeled, unlabeled, 2.0).item() == pytest.approx(expected)


def test_zero_radius_gives_zero_loss():
    a, b = torch.randn(3, 4, requires_grad=True), torch.randn(5, 4)
    loss = local_clustering_loss(a, b, 0.0)
    assert loss.item() == 0.0
    loss.backward()


def test_gradient_reaches_both_ends_of_a_pair():
    a = torch.tensor([[0.0, 0.0]], requires_grad=True)
    b = torch.tensor([[1.0, 0.5]], requires_grad=True)
    pair_clustering_loss(a, b, 5.0).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    torch.testing.assert_close(a.grad, -b.grad)



def test_lc_switches_on_in_the_epoch_the_official_loop_first_weights_it(monkeypatch):
    # Official (one-based epochs): `if epoch >= 3`, weight 10 r(epoch - 3; 4), r(0) = 0, so the first
    # non-zero weight is at its epoch 4 = our epoch 3: 10 exp(-5 (1 - 1/4)^2) = 0.6005.
    method = LCMeanTeacher(num_classes=4, backbone="tiny_mlp", lc_weight=10.0, lc_start_epoch=3, lc_rampup_epochs=4)
    weights = {}
    for epoch in range(0, 9):
        monkeypatch.setattr(LCMeanTeacher, "current_epoch", property(lambda self, e=epoch: e))
        weights[epoch] = method.lc_weight_now()
    assert weights[0] == weights[2] == 0.0
    assert weights[3] == pytest.approx(10 * math.exp(-5 * (1 - 1 / 4) ** 2)) == pytest.approx(0.6005, abs=1e-4)
    assert weights[6] == weights[8] == 10.0
    # The paper's CIFAR-10 schedule: LC at 600 with a 100-epoch ramp is first weighted in our epoch 600.
    paper = LCMeanTeacher(num_classes=4, backbone="tiny_mlp", lc_weight=10.0, lc_start_epoch=600, lc_rampup_epochs=100)
    monkeypatch.setattr(LCMeanTeacher, "current_epoch", property(lambda self: 599))
    assert paper.lc_weight_now() == 0.0
    monkeypatch.setattr(LCMeanTeacher, "current_epoch", property(lambda self: 600))
    assert paper.lc_weight_now() == pytest.approx(10 * math.exp(-5 * 0.99**2))


def test_lc_meanteacher_trains_and_reports_collapse(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3)
    # A huge radius and weight pull every feature together: the collapse must be reported.
    method = LCMeanTeacher(num_classes=4, backbone="tiny_mlp", lc_weight=1e4, epsilon=1e6, lc_start_epoch=-1, lc_rampup_epochs=0, lr=0.5, collapse_ratio=0.5)
    with pytest.warns(UserWarning, match="local clustering is collapsing the features"):
        tiny.tiny_trainer(tmp_path, max_epochs=3).fit(method, datamodule=dm)
    assert method.reference_feature_var > 0


def test_pair_distances_cover_labeled_unlabeled_and_distinct_unlabeled_pairs():
    labeled, unlabeled = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0], [3.0, 1.0]])
    # L-U: 1, 5; U-U without self-pairs: 2, 2 (mean over the two dims of the squared differences)
    assert sorted(pair_distances(labeled, unlabeled).tolist()) == [1.0, 2.0, 2.0, 5.0]


def test_epsilon_quantile_calibrates_once_when_lc_switches_on(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2)
    # lc_start_epoch=1: off in epoch 0 (the official epoch 1, r(0) = 0), on from epoch 1.
    method = LCMeanTeacher(num_classes=4, backbone="tiny_mlp", epsilon_quantile=0.1, lc_start_epoch=1, lc_rampup_epochs=1)
    tiny.tiny_trainer(tmp_path, max_epochs=1).fit(method, datamodule=dm)
    assert method.epsilon == 0  # LC was off during epoch 0: nothing calibrated yet
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=3)
    trainer.fit(method, datamodule=dm)
    calibrated = float(method.epsilon)
    assert calibrated > 0
    assert 0 < float(trainer.callback_metrics["train/lc_neighbour_fraction"]) < 1
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=4)
    trainer.fit(method, datamodule=dm)
    assert float(method.epsilon) == calibrated  # fixed after the first LC step
    with pytest.raises(ValueError, match="epsilon_quantile"):
        LCMeanTeacher(num_classes=4, backbone="tiny_mlp", epsilon_quantile=10)
