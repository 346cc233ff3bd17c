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
