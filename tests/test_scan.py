"""SCAN's stages: losses by hand, the neighbour table, and the SimCLR -> SCAN -> self-label chain end to end."""
import math

import lightning as L
import numpy as np
import pytest
import torch

import tiny
from sslzoo.functional import confidence_based_cross_entropy, entropy, scan_loss
from sslzoo.methods import SCAN, SCANSelfLabel, SimCLR
from sslzoo.modules import ClusteringMetrics, NeighbourTable

BACKBONE, OPTIONS = tiny.TINY_BACKBONES["tiny_conv"]


# ---- losses -------------------------------------------------------------------------
def test_scan_loss_by_hand():
    anchor = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # softmax: (0.75, 0.25), (0.5, 0.5)
    neighbour = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # (0.5, 0.5), (0.75, 0.25)
    total, consistency, spread = scan_loss(anchor, neighbour, entropy_weight=2.0)
    expected_consistency = -(math.log(0.5) + math.log(0.5)) / 2  # <p, q> = 0.5 for both pairs
    mean = (0.625, 0.375)
    expected_entropy = -sum(p * math.log(p) for p in mean)
    assert consistency.item() == pytest.approx(expected_consistency)
    assert spread.item() == pytest.approx(expected_entropy)
    assert total.item() == pytest.approx(expected_consistency - 2.0 * expected_entropy)


def test_scan_entropy_term_rewards_spread_predictions_and_both_branches_get_gradients():
    anchor = torch.randn(8, 3, requires_grad=True)
    neighbour = torch.randn(8, 3, requires_grad=True)
    total, _, _ = scan_loss(anchor, neighbour, entropy_weight=5.0)
    total.backward()
    assert anchor.grad.abs().sum() > 0 and neighbour.grad.abs().sum() > 0
    collapsed = torch.tensor([[9.0, 0.0, 0.0]] * 4)
    spread = torch.eye(3).repeat(2, 1)[:4] * 9.0
    assert scan_loss(spread, spread, 5.0)[0] < scan_loss(collapsed, collapsed, 5.0)[0]  # lower is better
    assert entropy(torch.tensor([0.5, 0.5])).item() == pytest.approx(math.log(2))


def test_scan_consistency_log_is_floored_like_bce():
    anchor, neighbour = torch.tensor([[200.0, -200.0]]), torch.tensor([[-200.0, 200.0]])
    _, consistency, _ = scan_loss(anchor, neighbour, entropy_weight=0.0)
    assert consistency.item() == pytest.approx(100.0)


def test_self_label_class_weights_by_hand():
    weak = torch.tensor([[9.0, 0, 0], [9.0, 0, 0], [0, 9.0, 0], [0, 0, 0.1]])  # 2x class 0, 1x class 1, 1 unconfident
    strong = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]])
    loss, targets, mask = confidence_based_cross_entropy(weak, strong, threshold=0.99)
    assert mask.tolist() == [True, True, True, False]
    ce = [-torch.log_softmax(strong[i], 0)[t].item() for i, t in enumerate([0, 0, 1])]
    w = [3 / 2, 3 / 2, 3 / 1]  # n / count_c over the 3 confident samples
    expected = sum(wi * ci for wi, ci in zip(w, ce)) / sum(w)
    assert loss.item() == pytest.approx(expected)
    unbalanced, _, _ = confidence_based_cross_entropy(weak, strong, threshold=0.99, balance_classes=False)
    assert unbalanced.item() == pytest.approx(sum(ce) / 3)


def test_self_label_empty_confident_set_is_a_zero_loss_not_a_crash():
    strong = torch.randn(4, 3, requires_grad=True)
    loss, _, mask = confidence_based_cross_entropy(torch.zeros(4, 3), strong, threshold=0.99)
    assert not mask.any() and loss.item() == 0.0
    loss.backward()
    assert torch.equal(strong.grad, torch.zeros_like(strong))


# ---- table and metrics ------------------------------------------------------------------
def test_neighbour_table_round_trips_through_file_and_state_dict(tmp_path):
    table = NeighbourTable(3)
    anchors = torch.tensor([5, 2, 9])
    table.fill(anchors, torch.tensor([[5, 2, 9], [2, 5, 9], [9, 2, 5]]))
    assert table.anchors.tolist() == [2, 5, 9] and table.neighbours[0].tolist() == [2, 5, 9]
    table.save(tmp_path / "nn.npz")
    loaded = NeighbourTable(3)
    loaded.load(tmp_path / "nn.npz")
    restored = NeighbourTable(3)
    restored.load_state_dict(table.state_dict())
    for other in (loaded, restored):
        assert torch.equal(other.anchors, table.anchors) and torch.equal(other.neighbours, table.neighbours)
    with pytest.raises(ValueError, match="num_neighbours"):
        NeighbourTable(5).load(tmp_path / "nn.npz")


def test_clustering_metrics_overclustering_is_many_to_one():
    metrics = ClusteringMetrics(num_clusters=4, num_classes=2)
    assert metrics.mapping == "many_to_one"
    probs = torch.eye(4)[[0, 1, 2, 3, 0, 2]]
    targets = torch.tensor([0, 0, 1, 1, 0, 0])  # clusters 0,1 -> class 0; 2 -> mixed (1 vs 1, ties to 0); 3 -> 1
    metrics.update(probs, targets)
    values = metrics.compute()
    assert values["cluster_acc"].item() == pytest.approx(5 / 6)
    metrics.cluster_to_class = torch.tensor([1, 1, 1, 1])
    metrics.update(probs[:0], targets[:0])  # a new update clears torchmetrics' cached result
    named = metrics.compute()
    assert named["named_acc"].item() == pytest.approx(2 / 6)


# ---- the chain end to end ------------------------------------------------------------------
def _data(tmp_path, **overrides):
    return tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, num_train=48, num_test=16), steps_per_epoch=3, **overrides)


def _fit(tmp_path, method, datamodule, steps, ckpt=None, callbacks=()):
    trainer = tiny.tiny_trainer(tmp_path, max_steps=steps, limit_val_batches=None, callbacks=list(callbacks), num_sanity_val_steps=0)
    trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt)
    return trainer


@pytest.fixture(scope="module")
def pretext(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simclr")
    L.seed_everything(0)
    method = SimCLR(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, hidden_dim=16, projection_dim=8, optimizer="sgd", lr=0.05)
    trainer = _fit(tmp, method, _data(tmp, unlabeled_batch_size=8), steps=3)
    assert np.isfinite(trainer.callback_metrics["train/loss_simclr"].item())
    path = tmp / "simclr.ckpt"
    trainer.save_checkpoint(path)
    return path


def _scan(pretext, **options):
    return SCAN(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, init_from=str(pretext), num_neighbours=3, **options)


def test_scan_mines_neighbours_trains_without_labels_and_reports_clustering_metrics(tmp_path, pretext):
    L.seed_everything(0)
    method = _scan(pretext, num_heads=2, neighbours_file=str(tmp_path / "neighbours.npz"))
    datamodule = _data(tmp_path, unlabeled_batch_size=8)
    trainer = _fit(tmp_path, method, datamodule, steps=6)
    table = method.neighbour_table
    assert len(table) == 48 and table.neighbours.shape == (48, 4)
    assert torch.equal(table.neighbours[:, 0], table.anchors)  # column 0: each image is its own nearest neighbour
    assert {"images", "mine_seconds", "purity_top3"} <= set(method.mining_report)
    assert (tmp_path / "neighbours.npz").is_file()
    metrics = trainer.callback_metrics
    for name in ("val/cluster_acc", "val/nmi", "val/ari", "train/consistency", "train/entropy", "train/best_head"):
        assert name in metrics, name
    assert "labeled" not in datamodule.stream_views() or datamodule.stream_views()["labeled"] == []


def test_scan_reads_an_existing_neighbours_file_instead_of_mining(tmp_path, pretext):
    L.seed_everything(0)
    first = _scan(pretext, neighbours_file=str(tmp_path / "nn.npz"))
    _fit(tmp_path / "a", first, _data(tmp_path, unlabeled_batch_size=8), steps=1)
    second = _scan("missing.ckpt", neighbours_file=str(tmp_path / "nn.npz"))
    second.hparams.init_from = None  # nothing to initialise from: the table alone must suffice
    _fit(tmp_path / "b", second, _data(tmp_path, unlabeled_batch_size=8), steps=1)
    assert torch.equal(second.neighbour_table.neighbours, first.neighbour_table.neighbours)


class StopAt(L.Callback):
    def __init__(self, step, path):
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


def test_scan_resume_keeps_the_neighbour_table_and_continues_exactly(tmp_path, pretext):
    def run(sub, ckpt=None, callbacks=()):
        L.seed_everything(0)
        method = _scan(pretext, num_heads=2)
        _fit(tmp_path / sub, method, _data(tmp_path, unlabeled_batch_size=8), steps=7, ckpt=ckpt, callbacks=callbacks)
        return method

    full = run("full")
    run("stopped", callbacks=[StopAt(4, tmp_path / "stop.ckpt")])
    resumed = run("resumed", ckpt=tmp_path / "stop.ckpt")
    for name, value in tiny.weights(full).items():
        assert torch.equal(value, tiny.weights(resumed)[name]), name


def test_self_label_takes_the_best_scan_head_and_survives_an_empty_confident_set(tmp_path, pretext):
    L.seed_everything(0)
    scan = _scan(pretext, num_heads=3)
    trainer = _fit(tmp_path / "scan", scan, _data(tmp_path, unlabeled_batch_size=8), steps=3)
    scan.best_head.fill_(2)
    trainer.save_checkpoint(tmp_path / "scan.ckpt")
    L.seed_everything(0)
    self_label = SCANSelfLabel(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, init_from=str(tmp_path / "scan.ckpt"),
                               threshold=0.999999, name_clusters_with_labels=True)
    before = {k: v.clone() for k, v in self_label.network.state_dict().items()}
    trainer = _fit(tmp_path / "self", self_label, _data(tmp_path, unlabeled_batch_size=8), steps=3)
    assert trainer.callback_metrics["train/empty_confident_set"].item() == 1.0
    assert "val/named_acc" in trainer.callback_metrics
    head = scan.network.heads.heads[2]
    # No confident sample: every step was skipped (weight decay included), so the head is still SCAN's head 2.
    torch.testing.assert_close(self_label.network.heads.heads[0].weight, head.weight)
    assert not torch.equal(before["heads.heads.0.weight"], self_label.network.heads.heads[0].weight)


def test_frozen_backbone_trains_the_heads_only(tmp_path, pretext):
    L.seed_everything(0)
    wrn, wrn_options = tiny.TINY_BACKBONES["tiny_wrn"]
    method = SCAN(num_classes=4, backbone=wrn, backbone_options=wrn_options, pretext=str(pretext), num_neighbours=3,
                  num_heads=2, update_backbone=False, optimizer="sgd", lr=0.5, weight_decay=0.0)
    before = tiny.weights(method)
    _fit(tmp_path, method, _data(tmp_path, unlabeled_batch_size=8), steps=3)
    after = tiny.weights(method)
    for name, value in before.items():
        if name.startswith("network.backbone."):  # weights and BatchNorm statistics
            assert torch.equal(value, after[name]), name
    assert not torch.equal(before["network.heads.heads.0.weight"], after["network.heads.heads.0.weight"])


def _ddp_scan(pretext):
    return SCAN(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, pretext=pretext, num_neighbours=3, num_heads=2, lr=0.01)


def _ddp_data(path, world_size):
    return tiny.tiny_datamodule(path, unlabeled_batch_size=8 // world_size, steps_per_epoch=3)


def test_scan_two_processes_equal_one(tmp_path, pretext):
    """Mining over sharded loaders, the pairs, the all-reduced mean prediction of the entropy term and the
    head selection: 2 processes with half the batch each give the weights of 1 process."""
    import functools

    import ddp

    make_dm = functools.partial(_ddp_data, tiny.tiny_npz(tmp_path, num_train=48, num_test=16))
    single, double = ddp.one_vs_two_processes(tmp_path, functools.partial(_ddp_scan, str(pretext)), make_dm, max_steps=4)
    assert single["neighbour_table.neighbours"].shape == (48, 4)


def test_imagenet_self_label_ema_replaces_the_trained_weights_after_every_step(tmp_path):
    """utils/train_utils.py selflabel_train with use_ema: after optimizer.step(), ema.update_params
    (parameters: shadow = a * shadow + (1 - a) * theta) then ema.apply_shadow (the whole state dict,
    whose BatchNorm statistics were cloned once at the start). So after one SGD step
    theta_1 = theta_0 + (1 - a) * (theta_sgd - theta_0), and the BN statistics are theta_0's."""
    decay = 0.9
    wrn, wrn_options = tiny.TINY_BACKBONES["tiny_wrn"]  # with BatchNorm

    def one_step(sub, **ema):
        L.seed_everything(0)
        method = SCANSelfLabel(num_classes=4, backbone=wrn, backbone_options=wrn_options, threshold=0.0,
                               optimizer="sgd", lr=0.5, momentum=0.0, nesterov=False, weight_decay=0.0, **ema)
        _fit(tmp_path / sub, method, _data(tmp_path, unlabeled_batch_size=8), steps=1)
        return method

    plain = one_step("plain")
    smoothed = one_step("ema", ema_decay=decay, ema_buffers="own", ema_replaces_weights=True)
    L.seed_everything(0)  # the two runs' starting weights
    start = SCANSelfLabel(num_classes=4, backbone=wrn, backbone_options=wrn_options)
    start_state = start.network.state_dict()
    trained, sgd = smoothed.network.state_dict(), plain.network.state_dict()
    assert set(trained) == set(smoothed.ema.module.state_dict())
    for name, value in trained.items():
        assert torch.equal(value, smoothed.ema.module.state_dict()[name]), name  # the trained weights are the EMA
    moved = 0
    for name, _ in smoothed.network.named_parameters():
        theta0 = start_state[name]
        expected = theta0 + (1 - decay) * (sgd[name] - theta0)
        torch.testing.assert_close(trained[name], expected, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(sgd[name], theta0))
    assert moved > 0
    buffers = [name for name, _ in smoothed.network.named_buffers()]
    assert any("running_mean" in name for name in buffers)
    for name in buffers:
        assert torch.equal(trained[name], start_state[name]), name  # BN statistics reset to the start
        if "running_mean" in name:
            assert not torch.equal(sgd[name], start_state[name])  # (a train-mode step does move them)
    with pytest.raises(ValueError, match="ema_buffers: own"):
        SCANSelfLabel(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, ema_decay=0.999, ema_replaces_weights=True)


def test_simclr_labeled_probe_rows_stay_out_of_the_representations_batchnorm_batch():
    """SCAN's simclr_train forwards the 2B views only: the probe's labeled rows must change neither
    the representation's gradients nor its BatchNorm running statistics."""
    import copy

    wrn, wrn_options = tiny.TINY_BACKBONES["tiny_wrn"]
    torch.manual_seed(0)
    method = SimCLR(num_classes=4, backbone=wrn, backbone_options=wrn_options, hidden_dim=16, projection_dim=8, anchors="first")
    method.train()
    views = [torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)]
    labeled = {"x": torch.randn(5, 3, 32, 32) * 3 + 2, "y": torch.tensor([0, 1, 2, 3, 0])}
    with_labels, without_labels = copy.deepcopy(method), copy.deepcopy(method)
    with_labels.training_step({"labeled": labeled, "unlabeled": {"x": views}}, 0).backward()
    without_labels.training_step({"unlabeled": {"x": views}}, 0).backward()
    assert with_labels.network.training
    for (name, a), (_, b) in zip(with_labels.network.named_parameters(), without_labels.network.named_parameters()):
        assert torch.equal(a.grad, b.grad), name
    stats = [(name, a, b) for (name, a), (_, b) in zip(with_labels.network.named_buffers(), without_labels.network.named_buffers())]
    assert any("running_mean" in name for name, _, _ in stats)
    for name, a, b in stats:
        assert torch.equal(a, b), name
    assert all(p.grad is not None for p in with_labels.probes.parameters())  # the probe still learns


def test_scan_validation_loss_by_hand():
    """utils/evaluate_utils.py scan_evaluate: BCE over every (anchor, candidate) pair minus the
    entropy of the mean prediction, with weight 1."""
    from sslzoo.functional import scan_validation_loss

    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    neighbours = torch.tensor([[0, 1], [1, 0], [2, 1]])
    total, consistency, spread = scan_validation_loss(probs, neighbours)
    # <p,q> = 1, .5, .5, .5, 1, .5: consistency = 4 ln 2 / 6; H([.5, .5]) = ln 2
    assert consistency.item() == pytest.approx(2 / 3 * math.log(2))
    assert spread.item() == pytest.approx(math.log(2))
    assert total.item() == pytest.approx(-math.log(2) / 3)
    kept = torch.tensor([[True, False], [True, False], [True, True]])  # <p,q> = 1, .5, 1, .5
    assert scan_validation_loss(probs, neighbours, kept)[1].item() == pytest.approx(2 / 4 * math.log(2))


def test_scan_selects_the_head_by_the_official_validation_scan_loss(tmp_path, pretext):
    L.seed_everything(0)
    method = _scan(pretext, num_heads=3, neighbours_file=str(tmp_path / "nn.npz"))
    datamodule = _data(tmp_path, unlabeled_batch_size=8)
    trainer = _fit(tmp_path, method, datamodule, steps=3)  # one epoch, one validation
    table = method.val_neighbour_table
    assert table.neighbours.shape == (16, 6) and (tmp_path / "nn_val.npz").is_file()  # the top-5 of the 16 test images
    assert torch.equal(table.neighbours[:, 0], table.anchors)
    from sslzoo.functional import scan_validation_loss

    method.eval()
    with torch.no_grad():
        batches = list(datamodule.val_dataloader())
        idx = torch.cat([b["idx"] for b in batches])
        logits = [method.eval_network(b["x"]) for b in batches]
    probs = [torch.cat([heads[h] for heads in logits]).softmax(dim=1)[torch.argsort(idx)] for h in range(3)]
    rows = torch.searchsorted(torch.sort(idx).values, table.neighbours)
    totals = torch.stack([scan_validation_loss(p, rows)[0] for p in probs])
    assert int(method.best_head) == int(totals.argmin())
    assert trainer.callback_metrics["val/scan_loss"].item() == pytest.approx(totals.min().item(), abs=1e-5)
    with pytest.raises(ValueError, match="head_selection"):
        _scan(pretext, head_selection="test_acc")
