import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tiny
from sslzoo.functional import aggregate, align_distribution, propagate_labels, unfold
from sslzoo.methods import SimMatch
from sslzoo.modules import DistributionAlignment, LabeledMemoryBank


def _random_probs(rows, cols, seed):
    return torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)).softmax(-1)


def test_unfold_and_aggregate_against_loops():
    probs, q = _random_probs(3, 4, 0), _random_probs(3, 6, 1)
    labels = torch.tensor([2, 0, 2, 3, 1, 0])
    unfolded, aggregated = unfold(probs, labels), aggregate(q, labels, 4)
    for b in range(3):
        for k in range(6):
            assert unfolded[b, k] == probs[b, labels[k]]
        for c in range(4):
            assert aggregated[b, c] == pytest.approx(sum(float(q[b, k]) for k in range(6) if labels[k] == c))


def test_propagation_by_hand():
    probs = torch.tensor([[0.6, 0.4]])
    q = torch.tensor([[0.5, 0.3, 0.2]])
    labels = torch.tensor([0, 1, 1])
    p_hat, q_hat = propagate_labels(probs, q, labels, alpha=0.9)
    torch.testing.assert_close(p_hat, torch.tensor([[0.9 * 0.6 + 0.1 * 0.5, 0.9 * 0.4 + 0.1 * 0.5]]))
    scaled = torch.tensor([0.5 * 0.6, 0.3 * 0.4, 0.2 * 0.4])
    torch.testing.assert_close(q_hat, (scaled / scaled.sum()).unsqueeze(0))


def test_alpha_one_gives_fixmatch_with_distribution_alignment():
    probs, q = _random_probs(5, 3, 2), _random_probs(5, 7, 3)
    da = DistributionAlignment(3, length=4)
    aligned = da(probs)
    p_hat, _ = propagate_labels(aligned, q, torch.randint(0, 3, (7,)), alpha=1.0)
    torch.testing.assert_close(p_hat, aligned)


def test_distribution_alignment_queue_math():
    da = DistributionAlignment(2, length=2)
    first = torch.tensor([[0.8, 0.2], [0.6, 0.4]])  # batch mean [0.7, 0.3]
    out = da(first)
    # queue = [[0.7, 0.3], [0, 0]] -> mean [0.35, 0.15]; p / mean, renormalised
    expected = first / torch.tensor([0.35, 0.15])
    torch.testing.assert_close(out, expected / expected.sum(-1, keepdim=True))
    second = torch.tensor([[0.5, 0.5]])
    out = da(second)
    mean = (torch.tensor([0.7, 0.3]) + torch.tensor([0.5, 0.5])) / 2
    expected = second / mean
    torch.testing.assert_close(out, expected / expected.sum(-1, keepdim=True))
    da(second)  # FIFO: the oldest entry is replaced
    torch.testing.assert_close(da.queue, torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    torch.testing.assert_close(align_distribution(second, torch.tensor([0.5, 0.5])), second)


def test_bank_update_math_and_duplicate_slots():
    bank = LabeledMemoryBank(dim=2, momentum=0.7)
    bank.reset([30, 10, 20], [2, 0, 1])
    assert bank.indices.tolist() == [10, 20, 30] and bank.labels.tolist() == [0, 1, 2]
    bank.embeddings.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    z = F.normalize(torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]), dim=1)
    bank.update(torch.tensor([10, 30, 30]), z)
    expected_10 = F.normalize(0.7 * torch.tensor([1.0, 0.0]) + 0.3 * z[0], dim=0)
    expected_30 = F.normalize(0.7 * torch.tensor([1.0, 0.0]) + 0.3 * (z[1] + z[2]) / 2, dim=0)
    torch.testing.assert_close(bank.embeddings[0], expected_10)
    torch.testing.assert_close(bank.embeddings[2], expected_30)
    torch.testing.assert_close(bank.embeddings[1], torch.tensor([0.0, 1.0]))
    reordered = LabeledMemoryBank(dim=2, momentum=0.7)
    reordered.reset([30, 10, 20], [2, 0, 1])
    reordered.embeddings.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    reordered.update(torch.tensor([30, 10, 30]), z[[2, 0, 1]])
    torch.testing.assert_close(reordered.embeddings, bank.embeddings)
    with pytest.raises(KeyError, match="not in the labeled set"):
        bank.update(torch.tensor([11]), z[:1])


def test_bank_restores_into_an_empty_bank():
    bank = LabeledMemoryBank(dim=4)
    bank.reset([5, 1, 3], [0, 1, 0])
    fresh = LabeledMemoryBank(dim=4)
    fresh.load_state_dict(bank.state_dict())
    assert torch.equal(fresh.embeddings, bank.embeddings) and torch.equal(fresh.indices, bank.indices)


def test_simmatch_trains_and_fills_the_bank(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3)
    method = SimMatch(num_classes=4, backbone="tiny_mlp", bank_warmup_epochs=1, da_length=4, threshold=0.5)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=2)
    bank_before = None

    class Snapshot(tiny.L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            nonlocal bank_before
            if trainer.current_epoch == 0:
                bank_before = pl_module.bank.embeddings.clone()

    trainer.callbacks.append(Snapshot())
    trainer.fit(method, datamodule=dm)
    assert len(method.bank) == 8 and set(method.bank.indices.tolist()) == set(dm.labeled_indices.tolist())
    assert not torch.allclose(bank_before, method.bank.embeddings)
    torch.testing.assert_close(method.bank.embeddings.norm(dim=1), torch.ones(8))
    assert "train/loss_instance" in trainer.callback_metrics  # L_in is on after the warm-up epoch
    assert int(method.distribution_alignment.position) == 6 % 4


@pytest.mark.parametrize("use_teacher", [False, True])
def test_both_bank_variants_run(tmp_path, use_teacher):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2)
    method = SimMatch(num_classes=4, backbone="tiny_mlp", bank_warmup_epochs=0, use_teacher=use_teacher, bank_momentum=0.0 if use_teacher else 0.7)
    tiny.tiny_trainer(tmp_path, max_steps=2).fit(method, datamodule=dm)
    if use_teacher:  # the bank holds the teacher's embeddings of the last labeled batch
        assert method.ema is not None


TINY_BN_WRN = {"backbone": "wide_resnet", "backbone_options": {"depth": 10, "widen_factor": 1, "bn_momentum": 0.5}}


def _one_step_with_snapshot(tmp_path, **method_args):
    """Fit one optimizer step; return (method, its batch, the EMA network as it was before the step)."""
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=1)
    method = SimMatch(num_classes=4, bank_warmup_epochs=0, ema_decay=0.9, **TINY_BN_WRN, **method_args)
    seen = {}

    class Snapshot(tiny.L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["batch"], seen["ema_before"] = batch, copy.deepcopy(pl_module.ema.module)

    trainer = tiny.tiny_trainer(tmp_path, max_steps=1, callbacks=[Snapshot()])
    trainer.fit(method, datamodule=dm)
    return method, seen["batch"], seen["ema_before"]


def _bn_buffers(network):
    return {name: buffer for name, buffer in network.named_buffers() if "running" in name}


def test_imagenet_teacher_keeps_its_own_bn_statistics_and_averages_parameters_only(tmp_path):
    # simmatch models/simmatch.py: momentum_update_ema (no --eman) lerps parameters only, and the
    # teacher, in train mode (simmatch.py model.train()), updates its BN statistics in its forward.
    method, batch, teacher_before = _one_step_with_snapshot(tmp_path, use_teacher=True, bank_momentum=0.0)
    assert method.ema.buffer_mode == "own"
    expected_teacher = copy.deepcopy(teacher_before).train()
    with torch.no_grad():
        expected_teacher.logits_and_projection(torch.cat([batch["labeled"]["x"], batch["unlabeled"]["x"][0]]))
    teacher, student = _bn_buffers(method.ema.module), _bn_buffers(method.network)
    for name, value in _bn_buffers(expected_teacher).items():
        assert torch.equal(teacher[name], value), name  # its own forward's statistics, not averaged
    assert any(not torch.allclose(teacher[name], student[name]) for name in teacher)  # the check is not vacuous
    for (name, ema_param), before, param in zip(
        method.ema.module.named_parameters(), teacher_before.parameters(), method.network.parameters()
    ):
        torch.testing.assert_close(ema_param, 0.9 * before + 0.1 * param.detach(), msg=name)


def test_cifar_ema_copies_the_student_bn_statistics(tmp_path):
    # USB semilearn/core/utils/misc.py EMA.update: parameters lerped, buffers cloned from the model.
    method, _, ema_before = _one_step_with_snapshot(tmp_path)
    assert method.ema.buffer_mode == "copy"
    for name, value in _bn_buffers(method.network).items():
        assert torch.equal(_bn_buffers(method.ema.module)[name], value), name
    for ema_param, before, param in zip(method.ema.module.parameters(), ema_before.parameters(), method.network.parameters()):
        torch.testing.assert_close(ema_param, 0.9 * before + 0.1 * param.detach())


def test_the_cli_keeps_the_variant_ema_buffers(tmp_path):
    # LightningCLI passes every parent argument: the base default ("average") must not win.
    from sslzoo.cli import build_cli

    args = tiny.toy_cli_args(tmp_path)
    args[args.index("FixMatch")] = "SimMatch"
    for extra, mode, weights in (([], "copy", "ema"), (["--model.use_teacher", "true"], "own", "student")):
        cli = build_cli(args + extra, run=False)
        assert (cli.model.ema.buffer_mode, cli.model.evaluate) == (mode, weights)


@pytest.mark.parametrize("use_teacher, evaluate, expected", [(True, None, "student"), (False, None, "ema"), (True, "ema", "ema"), (False, "student", "student")])
def test_evaluated_weights(use_teacher, evaluate, expected):
    # Paper §4.2 / simmatch engine.py validate -> model(images) -> SimMatch.forward -> self.main (the
    # student) on ImageNet; paper §4.1 reports the EMA on CIFAR.
    method = SimMatch(num_classes=4, backbone="tiny_mlp", use_teacher=use_teacher, evaluate=evaluate).eval()
    with torch.no_grad():
        for param in method.ema.module.parameters():
            param.add_(1.0)  # the teacher and the student now differ
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    chosen = method.network if expected == "student" else method.ema.module
    other = method.ema.module if expected == "student" else method.network
    assert torch.equal(method(x), chosen(x)) and not torch.allclose(method(x), other(x))


def test_bad_evaluate_and_missing_ema_are_refused():
    with pytest.raises(ValueError, match="evaluate must be one of"):
        SimMatch(num_classes=4, backbone="tiny_mlp", evaluate="teacher")
    with pytest.raises(ValueError, match="need ema_decay"):
        SimMatch(num_classes=4, backbone="tiny_mlp", use_teacher=True, ema_decay=None)


def _recipe(name):
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "experiments" / "simmatch" / name).read_text())
    return config["model"]["init_args"], config["data"]["init_args"]


@pytest.mark.parametrize("name", ["cifar10_40.yaml", "cifar10_250.yaml", "cifar10_4000.yaml", "cifar100_400.yaml", "cifar100_2500.yaml", "cifar100_10000.yaml"])
def test_cifar_recipes_follow_the_paper(name):
    # Paper §4.1: "the rest of the training set" is unlabeled; WRN28-2 / WRN28-8; one set of
    # hyper-parameters for both datasets; the EMA is evaluated.
    model, data = _recipe(name)
    assert data["include_labeled_in_unlabeled"] is False
    assert model["backbone"] == ("wrn_28_8" if name.startswith("cifar100") else "wrn_28_2")
    assert model["weight_decay"] == (1e-3 if name.startswith("cifar100") else 5e-4)
    paper = dict(threshold=0.95, lambda_u=1.0, lambda_in=1.0, temperature=0.1, alpha=0.9, da_length=32, bank_momentum=0.7, use_teacher=False)
    assert {key: model[key] for key in paper} == paper
    assert (model["evaluate"], model["ema_buffers"], data["batch_size"], data["unlabeled_ratio"]) == ("ema", "copy", 64, 7)


@pytest.mark.parametrize("name, warmup", [("imagenet_1percent.yaml", 5 * 3963), ("imagenet_10percent.yaml", 5 * 3603)])
def test_imagenet_recipes_follow_the_official_script(name, warmup):
    # simmatch script/train.sh + simmatch.py defaults; warm-up = 5 epochs of (1.28M - labeled) / 320 steps.
    model, data = _recipe(name)
    official = dict(threshold=0.7, lambda_u=10.0, lambda_in=5.0, temperature=0.1, alpha=0.9, da_length=256, bank_momentum=0.0,
                    use_teacher=True, ema_decay=0.999, ema_buffers="own", evaluate="student", lr=0.03, weight_decay=1e-4)
    assert {key: model[key] for key in official} == official
    assert (model["warmup_steps"], data["include_labeled_in_unlabeled"], data["batch_size"], data["unlabeled_ratio"]) == (warmup, False, 8, 5)
