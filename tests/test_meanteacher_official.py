"""Mean Teacher / LC-MT as the official LC-MT code (jay1204/local_clustering_with_mt_for_ssl) trains them:
data-dependent weight-norm init, separate labeled/unlabeled forwards, zero-padded translations,
weight decay on every parameter, and the paper recipes' schedules."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import tiny
from datamodules.info import CIFAR10
from datamodules.views import build_view
from datamodules.views.geometry import RandomTranslate
from sslzoo.methods import LCMeanTeacher, MeanTeacher
from sslzoo.methods import meanteacher as meanteacher_module
from sslzoo.methods.optim import param_groups
from sslzoo.nets import MeanOnlyBatchNorm

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# CNN-13 runs on 16 px images (the last map is 2x2 instead of 6x6): 4x cheaper, same layers.
CNN13 = dict(num_classes=4, backbone="cnn13", head="weight_norm")


def _cnn13_data(tmp_path, **overrides):
    options = dict(batch_size=8, unlabeled_ratio=1, steps_per_epoch=1)
    options.update(overrides)
    return tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, size=16), **options)


def test_weight_norm_init_at_fit_start_hits_the_official_logit_std_and_resume_skips_it(tmp_path, monkeypatch):
    init_logits = []
    original = meanteacher_module.data_dependent_init_classifier_

    def recording(*args, **kwargs):
        init_logits.append(original(*args, **kwargs))
        return init_logits[-1]

    monkeypatch.setattr(meanteacher_module, "data_dependent_init_classifier_", recording)
    dm = _cnn13_data(tmp_path)
    # lr 0: the one training step changes no parameter, so what we see is the init.
    method = LCMeanTeacher(**CNN13, lr=0.0, weight_decay=0.0, separate_forwards=True)
    trainer = tiny.tiny_trainer(tmp_path, max_steps=1)
    with torch.no_grad():
        torch.manual_seed(0)
        untouched = method.network.eval()(torch.randn(8, 3, 16, 16)).std(0, unbiased=False).mean()
    method.network.train()
    trainer.fit(method, datamodule=dm)
    assert len(init_logits) == 1 and bool(method.weight_norm_initialised)
    # model_helper.py WN_Linear_Mean_Only_BN(init_stdv=0.1): the head's output std on the init batch is 0.1
    # (each conv's is 1); without the init the logits are ~10x smaller.
    torch.testing.assert_close(init_logits[0].std(0, unbiased=False), torch.full((4,), 0.1), atol=1e-4, rtol=0)
    assert untouched < 0.03
    method_batch = method.labeled_init_batch()
    assert len(method_batch) == dm.batch_size  # the official `param_init` takes one labeled batch (32)
    with torch.no_grad():
        batch = method.network.train()(method_batch)
    assert 0.05 < float(batch.std(0, unbiased=False).mean()) < 0.3
    for student, teacher in zip(method.network.parameters(), method.ema.module.parameters()):
        torch.testing.assert_close(student, teacher)  # the teacher starts as the initialised student

    checkpoint = tmp_path / "after_init.ckpt"
    trainer.save_checkpoint(checkpoint)
    saved = {k: v.clone() for k, v in method.network.named_parameters()}
    resumed = LCMeanTeacher(**CNN13, lr=0.0, weight_decay=0.0, separate_forwards=True)
    with pytest.warns(UserWarning, match="now runs for 2"):
        tiny.tiny_trainer(tmp_path, max_steps=2).fit(resumed, datamodule=_cnn13_data(tmp_path), ckpt_path=checkpoint)
    assert len(init_logits) == 1  # no second init on resume
    for name, value in resumed.network.named_parameters():
        torch.testing.assert_close(value, saved[name], msg=name)


def test_init_without_an_sslzoo_datamodule_is_a_clear_error(tmp_path):
    loader = torch.utils.data.DataLoader(torch.zeros(4, 3, 16, 16))
    with pytest.raises(ValueError, match="data_dependent_init needs a labeled batch from an sslzoo datamodule"):
        tiny.tiny_trainer(tmp_path, max_steps=1).fit(MeanTeacher(**CNN13), train_dataloaders=loader)


def _norm_calls(norm: MeanOnlyBatchNorm) -> tuple[list, torch.utils.hooks.RemovableHandle]:
    calls = []
    # A copy: the LeakyReLU after the norm works in place on its output.
    handle = norm.register_forward_hook(lambda module, args, out: calls.append((args[0].detach(), out.detach().clone())))
    return calls, handle


@pytest.mark.parametrize("separate", [True, False])
def test_separate_forwards_give_mean_only_bn_statistics_per_sub_batch(tmp_path, separate):
    dm = _cnn13_data(tmp_path, batch_size=4, unlabeled_ratio=2)
    method = MeanTeacher(**CNN13, separate_forwards=separate)
    dm.trainer = None
    dm.labeled_views, dm.unlabeled_views = method.views["labeled"], method.views["unlabeled"]
    dm.setup()
    batch = next(iter(dm.train_dataloader()))[0]
    method.log = lambda *a, **k: None
    method.total_loss = lambda terms, n=None: sum(terms.values())
    student_norm, teacher_norm = method.network.backbone.layers[0].norm, method.ema.module.backbone.layers[0].norm
    student_calls, h1 = _norm_calls(student_norm)
    teacher_calls, h2 = _norm_calls(teacher_norm)
    method.training_step(batch, 0)
    h1.remove(), h2.remove()
    sizes = [[len(x) for x, _ in calls] for calls in (student_calls, teacher_calls)]
    if not separate:
        assert sizes == [[12], [12]]
        return
    assert sizes == [[4, 8], [4, 8]]  # model(label_x), model(unlabel_x); ema_model the same
    momentum = student_norm.momentum
    for x, out in student_calls:  # each sub-batch is centred on its own mean
        torch.testing.assert_close(out.mean(dim=(0, 2, 3)), student_norm.bias.detach(), atol=1e-5, rtol=0)
    mean_labeled, mean_unlabeled = (x.mean(dim=(0, 2, 3)) for x, _ in student_calls)
    # running_mean <- (1 - m) running_mean + m batch_mean, once per sub-batch (labeled first), from 0.
    expected = momentum * (1 - momentum) * mean_labeled + momentum * mean_unlabeled
    torch.testing.assert_close(student_norm.running_mean, expected, atol=1e-7, rtol=1e-5)


def test_zero_padding_matches_torchvision_random_crop_with_padding_2():
    # data_helper.py: RandomCrop(32, padding=2) pads with 0 (black) before cropping at a random offset.
    image = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)
    for seed in range(20):
        torch.manual_seed(seed)
        out = RandomTranslate(0.0625, padding="zero")(image)
        torch.manual_seed(seed)
        dy, dx = int(torch.randint(-2, 3, ())), int(torch.randint(-2, 3, ()))
        padded = F.pad(image, (2, 2, 2, 2), value=0)
        assert torch.equal(out, padded[:, 2 + dy : 34 + dy, 2 + dx : 34 + dx]), seed
    view = build_view({"name": "weak", "translate": 0.0625, "padding": "zero"}, CIFAR10)  # the recipes' view spec
    assert [(op.fraction, op.padding) for op in view.augmentations if isinstance(op, RandomTranslate)] == [(0.0625, "zero")]
    reflect = RandomTranslate(0.0625)(image)
    assert (reflect > 0).all()  # reflect padding (FixMatch) never shows black
    with pytest.raises(ValueError, match="padding must be one of"):
        RandomTranslate(0.0625, padding="edge")


def test_decay_norm_and_bias_decays_every_parameter_as_the_official_sgd():
    network = MeanTeacher(**CNN13).network
    every = [p for p in network.parameters() if p.requires_grad]
    decayed, skipped = param_groups([network], 1e-4, decay_norm_and_bias=True)
    assert len(decayed["params"]) == len(every) and not skipped["params"]  # SGD(model.parameters(), weight_decay=1e-4)
    decayed, skipped = param_groups([network], 1e-4)
    assert len(skipped["params"]) == 10  # our default spares the 9 conv + 1 head mean-only BN biases


RECIPES = {
    # config: (max_epochs, first epoch of the lr decay), LC-MT paper Sec. V-A and config.py
    "meanteacher/cifar10_2000.yaml": (800, 600),
    "meanteacher/cifar10_4000.yaml": (1000, 800),
    "meanteacher/svhn_500.yaml": (500, 300),
    "meanteacher/svhn_1000.yaml": (500, 300),
    "lc_meanteacher/cifar10_2000.yaml": (1000, 800),
    "lc_meanteacher/cifar10_4000.yaml": (1200, 1000),
    "lc_meanteacher/svhn_500.yaml": (600, 400),
    "lc_meanteacher/svhn_1000.yaml": (600, 400),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_paper_recipes_follow_the_official_code(name):
    config = yaml.safe_load((EXPERIMENTS / name).read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    epochs, decay_from = RECIPES[name]
    assert config["trainer"]["max_epochs"] == epochs
    assert model["decay_start"] * epochs == pytest.approx(decay_from, abs=1e-3)
    assert model["separate_forwards"] is True and model["decay_norm_and_bias"] is True
    assert model.get("data_dependent_init", True) and model.get("epochs_from_one", True)
    assert data["batch_size"] * data["unlabeled_ratio"] == 128 and data["batch_size"] == 32
    for view in data["labeled_views"] + data["unlabeled_views"]:
        assert view == {"name": "weak", "translate": 0.0625, "padding": "zero"}
    assert model.get("ema_decay", 0.99) == (0.995 if "svhn" in name else 0.99)
    assert math.isclose(model["lr"], 0.05) and math.isclose(model["weight_decay"], 1e-4)
