"""Suave, Daino and their SwAV/DINO pretexts: mixing, loss weighting, multi-crop, init_from, training."""
import math
import warnings

import pytest
import torch

import tiny
from sslzoo.functional import cross_view_cross_entropy, extend_with_mix, mix_pair, share_weights, sinkhorn, soft_cross_entropy
from sslzoo.methods import DINO, Daino, SwAV, Suave
from sslzoo.methods.init_from import init_from_checkpoint
from sslzoo.modules import MultiCropNetwork, Prototypes, resolution_runs

SMALL_SWAV = dict(num_classes=4, backbone="tiny_conv", hidden_dim=16, projection_dim=8)
SMALL_DINO = dict(num_classes=4, backbone="tiny_conv", hidden_dim=16, bottleneck_dim=8)
MULTICROP = [{"name": "multicrop", "num_local": 2, "local_size": 4}]


# ---- mixing ------------------------------------------------------------------------
def test_mixup_extends_the_batch_with_mixed_copies_and_targets():
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    targets = torch.eye(4)
    generator = torch.Generator().manual_seed(0)
    x, t = extend_with_mix(images, targets, generator, switch_prob=0.0)  # MixUp only
    assert x.shape[0] == t.shape[0] == 8
    torch.testing.assert_close(x[:4], images)
    lam = float(t[4, 0])
    torch.testing.assert_close(x[4:], lam * images + (1 - lam) * images.flip(0))
    torch.testing.assert_close(t[4:], lam * targets + (1 - lam) * targets.flip(0))
    torch.testing.assert_close(t.sum(dim=1), torch.ones(8))


def test_cutmix_lambda_is_the_kept_area_and_draws_are_reproducible():
    first, second = torch.zeros(3, 1, 10, 10), torch.ones(3, 1, 10, 10)
    mixed, lam = mix_pair(first, second, torch.Generator().manual_seed(5), switch_prob=1.0)
    assert lam == pytest.approx(1 - float(mixed[0].mean()))  # the pasted (ones) area is 1 - lam
    again, lam_again = mix_pair(first, second, torch.Generator().manual_seed(5), switch_prob=1.0)
    assert lam == lam_again and torch.equal(mixed, again)


# ---- loss weighting ---------------------------------------------------------------
def test_share_weights_make_one_mean_over_all_rows():
    weights = share_weights({"unsup": 6 * 8, "sup": 2 * 4, "mixed": 8})
    assert weights == {"unsup": 48 / 64, "sup": 8 / 64, "mixed": 8 / 64}
    # per-part means weighted by their shares == the mean of all per-row losses
    rows = {"unsup": torch.rand(48), "sup": torch.rand(8), "mixed": torch.rand(8)}
    weighted = sum(weights[k] * v.mean() for k, v in rows.items())
    torch.testing.assert_close(weighted, torch.cat(list(rows.values())).mean())


def test_suave_weights_the_mixed_view_by_rows_or_like_the_official_code():
    parts = {"unsup": (torch.tensor(1.0), 32), "sup": (torch.tensor(2.0), 8), "mixed": (torch.tensor(4.0), 8)}
    terms = Suave(**SMALL_SWAV).weighted_terms(parts, probe=(torch.tensor(3.0), 4))
    assert {k: float(v) for k, v in terms.items()} == pytest.approx({"unsup": 32 / 48, "sup": 16 / 48, "mixed": 32 / 48, "probe": 12 / 48})
    official = dict(parts, mixed=(torch.tensor(4.0), 1))  # the code counts mixed *views*, not rows
    terms = Suave(**SMALL_SWAV, mixed_weight="official").weighted_terms(official, probe=None)
    assert float(terms["mixed"]) == pytest.approx(4 / 41)


def test_cross_view_loss_pairs_each_target_with_every_other_view():
    logits = [torch.randn(3, 4) for _ in range(4)]
    targets = [torch.softmax(torch.randn(3, 4), 1) for _ in range(2)]
    expected = sum(soft_cross_entropy(logits[v], targets[t]) for t in range(2) for v in range(4) if v != t) / 6
    torch.testing.assert_close(cross_view_cross_entropy(logits, targets, [0, 1]), expected)


# ---- multi-crop ---------------------------------------------------------------------
def test_resolution_runs_group_consecutive_sizes():
    crops = [torch.zeros(2, 3, s, s) for s in (8, 8, 8, 4, 4, 8)]
    assert resolution_runs(crops) == [(0, 3), (3, 5), (5, 6)]


def _batch(num_labeled=4, batch=4, sizes=(8, 8, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    crops = [torch.randn(batch, 3, s, s, generator=g, requires_grad=True) for s in sizes]
    labeled = {"x": torch.randn(num_labeled, 3, 8, 8, generator=g, requires_grad=True), "y": torch.arange(num_labeled) % 4}
    return {"labeled": labeled, "unlabeled": {"x": crops, "y_hidden": torch.arange(batch) % 4, "idx": torch.arange(batch)}}


def test_multicrop_network_equals_one_forward_per_crop():
    class NoHead(torch.nn.Module):
        def forward(self, features):
            return {}

    network = MultiCropNetwork(tiny.TinyConv(), NoHead())
    crops = _batch()["unlabeled"]["x"]
    together = network(crops)["backbone"]
    one_by_one = torch.cat([network.backbone(c) for c in crops])
    torch.testing.assert_close(together, one_by_one)


@pytest.mark.parametrize(
    "method", [lambda: Suave(**SMALL_SWAV), lambda: SwAV(num_prototypes=6, **SMALL_SWAV), lambda: Daino(**SMALL_DINO), lambda: DINO(out_dim=6, **SMALL_DINO)],
    ids=["suave", "swav", "daino", "dino"],
)
def test_every_crop_reaches_the_loss(method):
    """A peer's DINO silently dropped the small crops; here every crop must get a gradient."""
    model = method()
    batch = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(batch, 0)
    loss.backward()
    for i, crop in enumerate(batch["unlabeled"]["x"]):
        assert crop.grad is not None and crop.grad.abs().sum() > 0, f"crop {i} does not reach the loss"


def official_probe_loss(model, outputs, labels):
    """Suave's online_loss: the probes' CE *summed*, each with the method's label smoothing
    (0.01; suave/main_suave.py:680-683), on the clean labeled rows."""
    heads = model.probes.heads  # Suave: backbone, hidden, projection = the code's cls_heads (bbone, proj_0, proj_last)
    return sum(
        torch.nn.functional.cross_entropy(heads[k](outputs[k][: len(labels)]), labels, label_smoothing=0.01) for k in heads
    )


def test_suave_loss_by_hand():
    """Suave without mixing or queue: shares of the swapped-prediction and labeled losses."""
    model = Suave(mixup_labeled=False, mixup_unlabeled=False, **SMALL_SWAV)
    batch = _batch(num_labeled=2, batch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = model.training_step(batch, 0)
    crops, labeled = batch["unlabeled"]["x"], batch["labeled"]
    with torch.no_grad():  # one forward as in the step: the head's BatchNorm sees the whole batch
        outputs = model.network([labeled["x"], *crops])
    labeled_scores, crop_scores = outputs["scores"][:2], list(outputs["scores"][2:].split(4))
    codes = [sinkhorn(crop_scores[i], 0.05, 3) for i in range(2)]
    swapped = sum(soft_cross_entropy(crop_scores[v] / 0.1, codes[i]) for i in range(2) for v in range(4) if v != i) / 6
    smoothed = torch.full((2, 4), 0.01 / 4) + 0.99 * torch.nn.functional.one_hot(labeled["y"], 4)
    supervised = soft_cross_entropy(labeled_scores / 0.1, smoothed)
    probe = official_probe_loss(model, outputs, labeled["y"])
    torch.testing.assert_close(loss, (16 * swapped + 2 * supervised + 2 * probe) / 18, rtol=1e-5, atol=1e-6)


def test_daino_loss_by_hand():
    """Daino without mixing: teacher targets softmax((t - c) / 0.04) of the two global crops,
    student predictions / 0.1 from every other crop, labeled CE, weighted by row shares."""
    model = Daino(mixup_labeled=False, **SMALL_DINO)
    with torch.no_grad():
        model.center.value.copy_(torch.randn(1, 4))
    center = model.center.value.clone()
    batch = _batch(num_labeled=2, batch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = model.training_step(batch, 0)
    crops, labeled = batch["unlabeled"]["x"], batch["labeled"]
    with torch.no_grad():
        teacher = model.ema.module(crops[:2])["scores"]
        outputs = model.network([labeled["x"], *crops])
    targets = ((teacher - center) / 0.04).softmax(dim=1).split(4)
    student = list(outputs["scores"][2:].split(4))
    dino = sum(soft_cross_entropy(student[v] / 0.1, targets[t]) for t in range(2) for v in range(4) if v != t) / 6
    smoothed = torch.full((2, 4), 0.01 / 4) + 0.99 * torch.nn.functional.one_hot(labeled["y"], 4)
    supervised = soft_cross_entropy(outputs["scores"][:2] / 0.1, smoothed)
    probe = official_probe_loss(model, outputs, labeled["y"])
    torch.testing.assert_close(loss, (16 * dino + 2 * supervised + 2 * probe) / 18, rtol=1e-5, atol=1e-6)
    assert len(model._pending_center) == 1  # the centre moves only after the optimizer step


def test_prototypes_are_unit_norm_rows_after_normalize():
    prototypes = Prototypes(8, 5)
    with torch.no_grad():
        prototypes.layer.weight.mul_(3.0)
    prototypes.normalize_()
    torch.testing.assert_close(prototypes.weight.norm(dim=1), torch.ones(5))


# ---- schedules ------------------------------------------------------------------------
def test_teacher_temperature_warms_up_linearly_per_epoch():
    model = Daino(**SMALL_DINO)
    assert [round(model.teacher_temperature_at(e), 4) for e in (0, 1, 9, 10, 50)] == [0.04, round(0.04 + 0.03 / 9, 4), 0.07, 0.07, 0.07]


def test_cosine_teacher_momentum_goes_from_base_to_one(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2, unlabeled_views=MULTICROP, labeled_views=["weak"])
    model = Daino(**SMALL_DINO)
    trainer = tiny.tiny_trainer(tmp_path, max_steps=4)
    trainer.fit(model, datamodule=dm)
    assert model.ema_decay_at(0) == pytest.approx(0.99)
    assert model.ema_decay_at(2) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)
    assert model.ema_decay_at(4) == pytest.approx(1.0)


# ---- end to end, init_from -------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: Suave(queue_length=8, **SMALL_SWAV),
        lambda: Suave(momentum_teacher=True, ema_decay=0.9, **SMALL_SWAV),
        lambda: SwAV(num_prototypes=6, queue_length=8, **SMALL_SWAV),
        lambda: DINO(out_dim=6, **SMALL_DINO),
        lambda: Daino(**SMALL_DINO),
    ],
    ids=["suave-queue", "suave-momentum", "swav", "dino", "daino"],
)
def test_methods_train_and_validate(tmp_path, make):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3, unlabeled_views=MULTICROP, labeled_views=["weak"])
    model = make()
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=2, limit_val_batches=1.0, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and 0 <= float(metrics["val/acc"]) <= 1
    if getattr(model, "queue", None) is not None:
        assert model.queue.full and float(metrics["train/queue_fill"]) == 1.0


def test_swav_checkpoint_initialises_suave_backbone_without_prototypes(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2, unlabeled_views=MULTICROP, labeled_views=["weak"])
    swav = SwAV(num_prototypes=6, **SMALL_SWAV)
    trainer = tiny.tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(swav, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "swav.ckpt")

    suave = Suave(init_from=str(tmp_path / "swav.ckpt"), init_parts=["backbone", "head.hidden", "head.projection"], ema_decay=0.9, **SMALL_SWAV)
    prototypes_before = suave.network.head.prototypes.weight.clone()
    suave.trainer = None
    report = init_from_checkpoint(suave.network, str(tmp_path / "swav.ckpt"), ("backbone", "head.hidden", "head.projection"))
    assert report["missing"] == [] and report["ignored"] > 0
    for name, value in swav.network.backbone.state_dict().items():
        assert torch.equal(suave.network.backbone.state_dict()[name], value)
    torch.testing.assert_close(suave.network.head.projection.weight, swav.network.head.projection.weight)
    assert torch.equal(suave.network.head.prototypes.weight, prototypes_before)  # K differs and is dropped

    # Through `fit`: the EMA copy starts from the loaded weights too.
    dm2 = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=1, unlabeled_views=MULTICROP, labeled_views=["weak"])
    suave = Suave(init_from=str(tmp_path / "swav.ckpt"), ema_decay=0.0, lr=0.0, **SMALL_SWAV)
    tiny.tiny_trainer(tmp_path, max_steps=1).fit(suave, datamodule=dm2)
    for name, value in swav.network.backbone.state_dict().items():
        assert torch.equal(suave.ema.module.backbone.state_dict()[name], value)


def test_init_from_reports_unusable_files(tmp_path):
    network = Suave(**SMALL_SWAV).network
    with pytest.raises(FileNotFoundError, match="does not exist"):
        init_from_checkpoint(network, str(tmp_path / "missing.ckpt"))
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no weight"):
        init_from_checkpoint(network, str(tmp_path / "other.pt"))
    torch.save(tiny.TinyConv().state_dict(), tmp_path / "plain.pt")  # a plain backbone state dict works
    assert init_from_checkpoint(network, str(tmp_path / "plain.pt"))["missing"] == []
    released = {"state_dict": {f"module.{k}": v for k, v in tiny.TinyConv().state_dict().items()}}  # SwAV-release style
    torch.save(released, tmp_path / "release.pth")
    assert init_from_checkpoint(network, str(tmp_path / "release.pth"))["missing"] == []
    torch.save({"net.0.weight": torch.zeros(1, 1, 1, 1)}, tmp_path / "wrong_shape.pt")
    with pytest.raises(ValueError, match="shapes differ"):
        init_from_checkpoint(network, str(tmp_path / "wrong_shape.pt"))


def test_suave_trains_on_two_global_crops_without_locals():
    """The fine-tuning stage's unlabeled view: 2 crops, no local crops."""
    model = Suave(**SMALL_SWAV)
    batch = _batch(sizes=(8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = model.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and all(c.grad.abs().sum() > 0 for c in batch["unlabeled"]["x"])


def test_bad_configurations_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="num_prototypes"):
        Suave(num_prototypes=7, **SMALL_SWAV)
    with pytest.raises(ValueError, match="out_dim"):
        Daino(out_dim=7, **SMALL_DINO)
    with pytest.raises(ValueError, match="momentum_teacher needs ema_decay"):
        Suave(momentum_teacher=True, ema_decay=None, **SMALL_SWAV)
    batch = _batch(sizes=(8,))
    with pytest.raises(ValueError, match="global crops"):
        Suave(**SMALL_SWAV).training_step(batch, 0)


def test_weight_decay_follows_a_cosine_to_its_end_value(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2, unlabeled_views=MULTICROP, labeled_views=["weak"])
    model = Daino(weight_decay=0.04, weight_decay_end=0.4, optimizer="adamw", lr=1e-3, **SMALL_DINO)
    trainer = tiny.tiny_trainer(tmp_path, max_steps=4)
    trainer.fit(model, datamodule=dm)
    decayed, not_decayed = trainer.optimizers[0].param_groups
    assert decayed["weight_decay"] == pytest.approx(0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * 3 / 4)) / 2)  # set before step 4
    assert not_decayed["weight_decay"] == 0.0


def test_lars_adapts_every_group_like_swav_larc():
    """A no-decay group (BN, biases) must get the trust ratio too: with lr 2.8 plain SGD would blow it up."""
    from sslzoo.methods.optim import build_optimizer

    weight, bias = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    optimizer = build_optimizer([{"params": [weight], "weight_decay": 0.0}, {"params": [bias], "weight_decay": 0.0}], "lars", lr=2.8, momentum=0.0)
    weight.grad, bias.grad = torch.full((4,), 1000.0), torch.full((4,), 10.0)
    optimizer.step()
    # step = lr * 0.001 * ||p|| / ||g|| * g = 2.8 * 0.001 * 2 / 2000 * 1000 for both, whatever the grad scale
    torch.testing.assert_close(weight.detach(), torch.full((4,), 1 - 0.0028))
    torch.testing.assert_close(bias.detach(), torch.full((4,), 1 - 0.0028))


# ---- official behaviour pinned (issue 15) --------------------------------------------------
def test_suave_default_weighs_the_mixed_view_like_the_official_code():
    """suave/main_suave.py:597,687-690: mixed_unlab_bs is the number of mixed *views* (1), so the
    mixed term's share is 1 / (B x crops + labeled rows + 1), not B / total."""
    model = Suave(mixup_labeled=False, **SMALL_SWAV)  # default mixed_weight
    seen = {}
    weigh = model.weighted_terms

    def spy(parts, probe):
        seen["parts"], seen["terms"] = parts, weigh(parts, probe)
        return seen["terms"]

    model.weighted_terms = spy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.training_step(_batch(num_labeled=2, batch=4), 0)
    total = 4 * 4 + 2 + 1  # 4 crops of 4 images, 2 labeled rows, 1 mixed view
    parts, terms = seen["parts"], seen["terms"]
    torch.testing.assert_close(terms["mixed"], parts["mixed"][0] / total)
    torch.testing.assert_close(terms["unsup"], parts["unsup"][0] * 16 / total)
    torch.testing.assert_close(terms["sup"], parts["sup"][0] * 2 / total)


def test_lars_options_give_solo_learns_clipped_lars_without_bn_and_bias():
    """solo-learn's CIFAR SwAV (scripts/pretrain/cifar-multicrop/swav.yaml: eta 0.02, clip_lr,
    exclude_bias_n_norm; solo/utils/lars.py): kernels get min(eta ||p|| / (||g|| + wd ||p||) / lr, 1),
    1-D parameters (no-decay group) plain SGD."""
    from sslzoo.methods.optim import build_optimizer

    options = {"trust_coeff": 0.02, "trust_clip": True, "always_adapt": False}
    big, small, bias = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(4))
    groups = [{"params": [big, small], "weight_decay": 1e-6}, {"params": [bias], "weight_decay": 0.0}]
    optimizer = build_optimizer(groups, "lars", lr=0.6, momentum=0.9, lars_options=options)
    big.grad, small.grad, bias.grad = torch.full((2, 2), 1000.0), torch.full((2, 2), 1e-3), torch.full((4,), 10.0)
    optimizer.step()
    # big: ratio 0.02 * 2 / (2000 + 2e-6) / 0.6 < 1 -> step 0.6 * ratio * (1000 + 1e-6) = 0.02
    torch.testing.assert_close(big.detach(), torch.full((2, 2), 1 - 0.02), rtol=0, atol=1e-7)
    # small: ratio 0.02 * 2 / 2.000002e-3 / 0.6 = 33 -> clipped to 1: plain step 0.6 * (1e-3 + 1e-6)
    torch.testing.assert_close(small.detach(), torch.full((2, 2), 1 - 0.6 * (1e-3 + 1e-6)))
    torch.testing.assert_close(bias.detach(), torch.full((4,), 1 - 6.0))  # 1-D: no trust ratio, lr 0.6
    with pytest.raises(ValueError, match="unknown lars_options"):
        build_optimizer(groups, "lars", lr=0.6, lars_options={"eta": 0.02})
    with pytest.raises(ValueError, match="lars_options are for optimizer 'lars'"):
        build_optimizer(groups, "sgd", lr=0.6, lars_options=options)


def test_suave_with_a_momentum_teacher_evaluates_the_online_model():
    """suave/main_suave.py:501 validate(val_loader, model): the online network, not the EMA teacher."""
    model = Suave(momentum_teacher=True, ema_decay=0.99, **SMALL_SWAV).eval()
    with torch.no_grad():
        for p in model.ema.module.parameters():
            p.add_(torch.randn_like(p))
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.network(x)["scores"] / 0.1)
        teacher = Suave(momentum_teacher=True, ema_decay=0.99, evaluate="ema", **SMALL_SWAV).eval()
        teacher.load_state_dict(model.state_dict())
        torch.testing.assert_close(teacher(x), model.ema.module(x)["scores"] / 0.1)
    with pytest.raises(ValueError, match="needs an EMA copy"):
        Suave(evaluate="ema", **SMALL_SWAV)


def test_teacher_prototypes_are_unit_norm_at_every_teacher_forward(tmp_path):
    """suave/main_suave.py:577-580 normalises the momentum encoder's prototypes before every step."""
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3, unlabeled_views=MULTICROP, labeled_views=["weak"])
    model = Suave(momentum_teacher=True, ema_decay=0.5, ema_buffers="own", **SMALL_SWAV)
    prototypes = model.ema.module.head.prototypes
    with torch.no_grad():
        prototypes.layer.weight.mul_(3.0)  # off the sphere, as an EMA update leaves them (less so)
    norms, forward = [], prototypes.forward

    def spy(z):
        norms.append(prototypes.weight.norm(dim=1).clone())
        return forward(z)

    prototypes.forward = spy
    tiny.tiny_trainer(tmp_path, max_steps=3, limit_val_batches=0).fit(model, datamodule=dm)
    assert len(norms) == 3
    for step_norms in norms:
        torch.testing.assert_close(step_norms, torch.ones(4))


def test_light_labeled_view_has_the_official_hue():
    """suave/main_suave.py:315-322 light_augment_lab: ColorJitter(0.1, 0.1, 0.1, 0.1), no greyscale."""
    from datamodules.views.contrastive import ColorJitter, RandomGrayscale, simclr_view

    info = type("Info", (), {"fixed_size": False, "image_size": 224, "mean": (0.5,) * 3, "std": (0.25,) * 3})()
    view = simclr_view(info, strength=0.125, hue=0.1, gray_prob=0.0, blur_prob=0.0, crop_scale=[0.08, 1.0])
    jitter = next(m for m in view.modules() if isinstance(m, ColorJitter))
    ranges = [float(v) for b in (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for v in b]
    assert ranges == pytest.approx([0.9, 1.1, 0.9, 1.1, 0.9, 1.1, -0.1, 0.1])
    assert next(m for m in view.modules() if isinstance(m, RandomGrayscale)).p == 0.0
    default = next(m for m in simclr_view(info, strength=0.125).modules() if isinstance(m, ColorJitter))
    assert list(default.hue) == pytest.approx([-0.025, 0.025])  # SimCLR's 0.2 s without `hue`
