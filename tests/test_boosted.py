"""Boosted SSL end to end: phases as epochs of one run, targets, optimizers, EMA and resume."""
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch

import tiny
from sslzoo.methods import BoostedFixMatch, BoostedMeanTeacher, BoostedSimMatch

BACKBONE, OPTIONS = tiny.TINY_BACKBONES["tiny_wrn"]
# Epoch 0 RotNet warm-up; round 0 = epochs 1 (ssl), 2 (rotnet), 3 (clustering); round 1 starts at epoch 4.
BOOST = dict(warmup_epochs=1, ssl_epochs=1, clustering_batch_size=8, clustering_milestones=[1], num_augmentations=2)


def _run(tmp_path, method_cls=BoostedFixMatch, epochs=5, ckpt=None, callbacks=(), logger=False, **options):
    L.seed_everything(0)
    method = method_cls(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, **{**BOOST, **options})
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=epochs, reload_dataloaders_every_n_epochs=1, callbacks=list(callbacks), logger=logger)
    trainer.fit(method, datamodule=dm, ckpt_path=ckpt)
    return method, trainer


class Recorder(L.Callback):
    def __init__(self):
        self.phases, self.views = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.phases.append(int(trainer.callback_metrics["train/phase"]))
        self.views.append(sorted(batch))


def test_phases_run_as_epochs_with_their_own_views_optimizers_and_ema(tmp_path):
    recorder = Recorder()
    method, trainer = _run(tmp_path, callbacks=[recorder])
    # warmup, ssl, rotnet, clustering, ssl: 3 steps each
    assert recorder.phases == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [1] * 3
    assert recorder.views[0] == ["unlabeled"] and recorder.views[3] == ["labeled", "unlabeled"]
    assert int(method.ema.num_updates) == 6  # the EMA moves in SSL steps only
    counts = method.cluster_targets.counts()
    assert counts.tolist() == [16, 16, 16, 16]  # alpha = 1: 64 targets, and clustering only moves them
    ssl_schedule, clustering_schedule = trainer.lr_scheduler_configs
    assert ssl_schedule.scheduler.last_epoch == 2 and clustering_schedule.scheduler.last_epoch == 1
    assert trainer.optimizers[1].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5)  # halved after round 0 (milestone 1)


def test_a_run_must_rebuild_its_loaders_every_epoch(tmp_path):
    method = BoostedFixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, **BOOST)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=2)
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs"):
        trainer.fit(method, datamodule=tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3))


class StopAtEpochEnd(L.Callback):
    def __init__(self, epoch, path):
        self.epoch, self.path = epoch, path

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        trainer.save_checkpoint(self.path)


def test_resume_mid_round_keeps_targets_phase_and_both_optimizers(tmp_path):
    full, full_trainer = _run(tmp_path / "full")
    _run(tmp_path / "stopped", callbacks=[StopAtEpochEnd(2, tmp_path / "stop.ckpt")])  # after the RotNet epoch of round 0
    resumed, resumed_trainer = _run(tmp_path / "resumed", ckpt=tmp_path / "stop.ckpt")
    assert torch.equal(full.cluster_targets.targets, resumed.cluster_targets.targets)
    for name, value in tiny.weights(full).items():
        assert torch.equal(value, tiny.weights(resumed)[name]), name
    for a, b in zip(full_trainer.optimizers, resumed_trainer.optimizers):
        for key, state in a.state_dict()["state"].items():
            assert torch.equal(state["momentum_buffer"], b.state_dict()["state"][key]["momentum_buffer"])


@pytest.mark.parametrize("method_cls", [BoostedMeanTeacher, BoostedSimMatch])
def test_other_ssl_methods_can_be_boosted(tmp_path, method_cls):
    options = {"warmup_epochs": 0} if method_cls is BoostedMeanTeacher else {"warmup_epochs": 0, "bank_warmup_epochs": 0, "da_length": 3}
    method, trainer = _run(tmp_path, method_cls, epochs=4, **options)
    assert trainer.global_step > 0 and int(method.ema.num_updates) > 0
    assert method.cluster_targets.counts().tolist() == [16, 16, 16, 16]


def test_test_reports_the_oracle_permutation_curve(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    method, trainer = _run(tmp_path, epochs=2, permutation_top_k=5, permutation_repeats=2, logger=CSVLogger(tmp_path))
    (metrics,) = trainer.test(method, datamodule=trainer.datamodule, verbose=False)
    assert 0.0 <= metrics["test/oracle_top5_perm_acc"] <= 1.0
    curve = json.loads((Path(trainer.log_dir) / "top_k_permutations.json").read_text())["oracle_accuracy_by_k"]
    assert curve == sorted(curve) and curve[-1] == pytest.approx(metrics["test/oracle_top5_perm_acc"])


def test_permutation_functions_by_hand():
    from sslzoo.functional import class_output_costs, nearby_permutations, oracle_accuracy_curve

    logits = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])  # class 0 lives on output 1, class 1 on output 0
    cost = class_output_costs(logits, labels, 2)
    assert cost.tolist() == [[2.0, 0.0], [0.0, 2.0]]
    maps = nearby_permutations(cost, 2)
    assert maps[0].tolist() == [1, 0] and maps[1].tolist() == [0, 1]  # output -> class, best first
    preds, targets = torch.tensor([1, 1, 0]), torch.tensor([0, 0, 1])
    assert oracle_accuracy_curve(preds, targets, maps) == [1.0, 1.0]


def test_paper_variant_squares_the_distance_of_the_confidence_rule():
    from sslzoo.functional import assign_batch_targets

    # ||f - e_0|| for f = normalize(0.95, 0.3122): unsquared 0.317 (> rho 0.2), squared 0.1 (< 0.2).
    outputs = torch.tensor([[0.95, (1 - 0.95**2) ** 0.5]])
    no_target = torch.tensor([-1])
    assert not assign_batch_targets(outputs, no_target, 0.2).kept.item()
    assert assign_batch_targets(outputs, no_target, 0.2, squared=True).kept.item()


def test_paper_variant_runs_a_round(tmp_path):
    method, _ = _run(tmp_path, epochs=4, paper_variant=True)
    assert method.cluster_targets.counts().tolist() == [16, 16, 16, 16]


# Review fixes (issue 15): the official behaviours, pinned.


def _method(**options):
    return BoostedFixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, **{**BOOST, "warmup_epochs": 0, **options})


def test_ema_decay_warms_up_as_the_official_model_ema():
    method = _method()
    # utils/ema.py: decay = min(0.999, (step + 1) / (step + 10)), step = earlier updates
    assert method.ema_decay_at(0) == pytest.approx(0.1)
    assert method.ema_decay_at(9) == pytest.approx(10 / 19)
    assert method.ema_decay_at(100_000) == pytest.approx(0.999)
    assert _method(ema_warmup=False).ema_decay_at(0) == pytest.approx(0.999)


class _RowCounter:
    def __init__(self, module):
        self.rows = []
        module.register_forward_pre_hook(lambda _, args: self.rows.append(len(args[0])))


@pytest.mark.parametrize("forward, gradient_rows", [("kept", 2 * 4), ("all", 2 * 8)])
def test_clustering_gradient_pass_forwards_only_the_kept_images(forward, gradient_rows):
    method = _method(alpha=0.5, rho=0.0, clustering_forward=forward)  # 4 of 8 images hold a target, no pseudo-targets
    method._unlabeled_indices = torch.arange(8)
    method.cluster_targets.reset(8)
    counter = _RowCounter(method.network)
    torch.manual_seed(0)
    views = [torch.randn(8, 3, 8, 8) for _ in range(3)]  # clean + r = 2 augmentations
    loss = method.clustering_step({"x": views, "idx": torch.arange(8)})
    assert counter.rows == [8, gradient_rows] and loss.requires_grad


class _Logits(torch.nn.Module):
    """A 'network' whose logits are its inputs, to check the FixMatch phase's loss by hand."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Identity()
        self.head = torch.nn.Linear(1, 1)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.scale


@pytest.mark.parametrize("weak_forward, reduction, rows, unsup", [
    ("separate", "confident", [4, 2], math.log(2)),      # CTAFixMatch.ss_batch: weak alone, then [x; confident strong]
    ("separate", "all", [4, 5], math.log(2) / 4),
    ("joint", "confident", [9], math.log(2)),
    ("joint", "all", [9], math.log(2) / 4),              # official FixMatch: / muB
])
def test_fixmatch_phase_forward_and_unlabeled_mean(weak_forward, reduction, rows, unsup):
    method = _method(strong_augment="randaugment", weak_forward=weak_forward, unlabeled_reduction=reduction)
    method.network = _Logits()
    counter = _RowCounter(method.network)
    weak = torch.tensor([[5.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # only image 0 is confident (p = 0.993)
    strong = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    batch = {"labeled": {"x": torch.zeros(1, 2), "y": torch.tensor([0])},
             "unlabeled": {"x": [weak, strong], "y_hidden": torch.tensor([0, 1, 1, 1])}}
    method.idle_modules = lambda: []
    loss = method.ssl_step(batch, 0)
    assert counter.rows == rows
    assert loss.item() == pytest.approx(math.log(2) + unsup, rel=1e-6)


def test_ctaugment_rates_learn_in_fixmatch_steps_and_reach_the_loaders(tmp_path):
    from datamodules.views.ctaugment import NUM_RATES, shared_rates

    recorder = Recorder()
    method, _ = _run(tmp_path, epochs=2, callbacks=[recorder])  # warm-up epoch, then one FixMatch epoch of 3 steps
    assert recorder.views[3] == ["labeled", "unlabeled"]
    moved = method.cta.rates != 1
    assert 0 < int(moved.sum()) <= 3 * 4 * 2 * 2  # 3 steps x 4 probes x depth 2 x <= 2 arguments
    assert torch.equal(shared_rates(), method.cta.rates.cpu())  # what the loaders' workers read
    assert "cta.rates" in method.state_dict()
    ssl_views = _method().views  # epoch 0 without warm-up: a FixMatch epoch
    assert ssl_views == {"labeled": ["clustering", "cta_probe"], "unlabeled": ["weak", "ctaugment"]}
    assert isinstance(method.rotation_head, torch.nn.Sequential)  # the official MLP head by default
