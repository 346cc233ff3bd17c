import math

import lightning as L
import pytest
import torch

import tiny
from sslzoo.methods import FixMatch, MeanTeacher, NonFiniteLossError, Supervised

BACKBONE, BACKBONE_OPTIONS = tiny.TINY_BACKBONES["tiny_wrn"]


def _method(cls, **kwargs):
    kwargs.setdefault("backbone", BACKBONE)
    kwargs.setdefault("backbone_options", BACKBONE_OPTIONS)
    return cls(num_classes=4, **kwargs)


def _batch(dm, method):
    dm.trainer = None
    dm.labeled_views, dm.unlabeled_views = method.views["labeled"], method.views["unlabeled"]
    dm.setup()
    return next(iter(dm.train_dataloader()))[0]


def test_fixmatch_one_concatenated_forward_and_loss(tmp_path):
    L.seed_everything(0)
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path))
    method = _method(FixMatch, threshold=0.0)
    batch = _batch(dm, method)
    sizes = []
    handle = method.network.register_forward_hook(lambda mod, args, out: sizes.append(args[0].shape[0]))
    logged = {}
    method.log = lambda name, value, **kw: logged.__setitem__(name, value)
    loss = method.training_step(batch, 0)
    handle.remove()
    assert sizes == [4 + 8 + 8]  # labeled + weak + strong in one BN batch
    assert logged["train/mask_rate"] == 1.0
    assert torch.isfinite(loss) and loss > 0


def test_fixmatch_unlabeled_term_matches_hand_computation(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path))
    method = _method(FixMatch, threshold=0.3, lambda_u=2.0)
    batch = _batch(dm, method)
    terms = {}
    method.total_loss = lambda t, n=None: terms.update(t) or sum(t.values())
    method.log = lambda *a, **k: None
    method.training_step(batch, 0)
    weak, strong = batch["unlabeled"]["x"]
    logits = method.network(torch.cat([batch["labeled"]["x"], weak, strong]))
    logits_weak, logits_strong = logits[4:12], logits[12:]
    probs = logits_weak.softmax(-1)
    conf, pseudo = probs.max(-1)
    ce = torch.nn.functional.cross_entropy(logits_strong, pseudo, reduction="none")
    expected = 2.0 * (ce * (conf >= 0.3)).sum() / 8
    torch.testing.assert_close(terms["unsup"], expected)


def test_meanteacher_consistency_has_gradient_through_the_student(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path))
    method = _method(MeanTeacher, rampup_epochs=0)
    batch = _batch(dm, method)
    terms = {}
    method.total_loss = lambda t, n=None: terms.update(t) or sum(t.values())
    method.log = lambda *a, **k: None
    method.training_step(batch, 0)
    assert terms["consistency"].requires_grad and terms["consistency"] > 0
    terms["consistency"].backward()
    student_grad = sum(p.grad.abs().sum() for p in method.network.parameters() if p.grad is not None)
    assert student_grad > 0
    assert all(p.grad is None for p in method.ema.parameters())


def test_meanteacher_rampup_follows_the_epoch():
    # Our epoch 0 is LC-MT's epoch 1 (`for epoch in range(1, ...)`): 100 exp(-5 (1 - 1/5)^2) = 4.076.
    method = _method(MeanTeacher, consistency_weight=100.0, rampup_epochs=5)
    assert method.consistency_weight_now() == pytest.approx(100 * math.exp(-5 * 0.8**2)) == pytest.approx(4.0762204)
    counted_from_zero = _method(MeanTeacher, consistency_weight=100.0, rampup_epochs=5, epochs_from_one=False)
    assert counted_from_zero.consistency_weight_now() == pytest.approx(100 * math.exp(-5))


def test_ema_updates_once_per_optimizer_step_under_accumulation(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=6)
    method = _method(FixMatch)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=1, accumulate_grad_batches=2)
    trainer.fit(method, datamodule=dm)
    assert trainer.global_step == 3 and int(method.ema.num_updates) == 3


@pytest.mark.parametrize("cls", [FixMatch, Supervised])
def test_ema_averages_the_parameters_and_takes_the_live_bn_statistics(tmp_path, cls):
    """google-research/fixmatch fixmatch.py: ema.apply(utils.model_vars()) averages the trainable
    variables only; the EMA network evaluates with the live network's BN statistics."""
    L.seed_everything(0)
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=1)
    method = _method(cls, ema_decay=0.9)
    before = {k: v.detach().clone() for k, v in method.network.named_parameters()}
    trainer = tiny.tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(method, datamodule=dm)
    assert method.ema.buffer_mode == "copy" and int(method.ema.num_updates) == 1
    live_buffers, ema_buffers = dict(method.network.named_buffers()), dict(method.ema.module.named_buffers())
    running_means = [k for k in live_buffers if k.endswith("running_mean")]
    assert running_means and all(live_buffers[k].abs().sum() > 0 for k in running_means)  # BN saw the batch
    for name, buffer in live_buffers.items():
        assert torch.equal(ema_buffers[name], buffer), name
    for name, live in method.network.named_parameters():
        ema = dict(method.ema.module.named_parameters())[name]
        torch.testing.assert_close(ema, 0.9 * before[name] + 0.1 * live.detach())
    assert any(not torch.equal(p, before[n]) for n, p in method.network.named_parameters())


def test_supervised_uses_labeled_stream_only(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path))
    method = _method(Supervised)
    trainer = tiny.tiny_trainer(tmp_path, max_steps=3, limit_val_batches=None)
    trainer.fit(method, datamodule=dm)
    assert trainer.global_step == 3 and "val/acc" in trainer.callback_metrics
    results = trainer.test(method, datamodule=dm, verbose=False)[0]
    assert {"test/acc", "test/balanced_acc", "test/cluster_acc", "test/nmi", "test/ari"} <= set(results)
    assert results["test/cluster_acc"] >= results["test/acc"] - 1e-6


def test_nan_loss_names_the_term_and_step(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path))
    method = _method(FixMatch)

    class PoisonAtStep2(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2:
                batch["labeled"]["x"][0, 0, 0, 0] = float("nan")

    trainer = tiny.tiny_trainer(tmp_path, max_steps=5, callbacks=[PoisonAtStep2()])
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 2 .*term\(s\) sup"):
        trainer.fit(method, datamodule=dm)


def test_num_classes_mismatch_is_a_clear_error(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path))
    method = FixMatch(num_classes=10, backbone=BACKBONE, backbone_options=BACKBONE_OPTIONS)
    with pytest.raises(ValueError, match="model.num_classes=10 but the data has 4 classes"):
        tiny.tiny_trainer(tmp_path, max_steps=1).fit(method, datamodule=dm)


@pytest.mark.parametrize("method, buffers", [("FixMatch", "copy"), ("Supervised", "copy"), ("MeanTeacher", "own")])
def test_the_cli_keeps_each_methods_ema_buffers(tmp_path, method, buffers):
    # LightningCLI passes every parent argument: SSLMethod's default ("average") must not win.
    from sslzoo.cli import build_cli

    args = tiny.toy_cli_args(tmp_path)
    args[args.index("FixMatch")] = method
    cli = build_cli(args + ["--model.ema_decay", "0.99"], run=False)
    assert cli.model.ema.buffer_mode == buffers
