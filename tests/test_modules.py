import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as sk_metrics
from torch import nn

from sslzoo.modules import EMA, classification_metrics, update_classification_metrics
from sslzoo.modules.cluster_accuracy import AdjustedRandIndex, NormalizedMutualInfo


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_ema_update_math():
    net = _net()
    ema = EMA(net, decay=0.9)
    before = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.add_(2.0)
        net[1].num_batches_tracked.add_(5)
    ema.update(net)
    for old, new, cur in zip(before, ema.module.parameters(), net.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * cur)
    torch.testing.assert_close(ema.module[1].running_mean, torch.full((4,), 0.2))
    assert ema.module[1].num_batches_tracked.item() == 5 and ema.num_updates.item() == 1


def test_ema_buffer_modes():
    net = _net()
    with torch.no_grad():
        net[1].running_mean.fill_(1.0)
    copy, own = EMA(_net(), 0.9, buffers="copy"), EMA(_net(), 0.9, buffers="own")
    copy.update(net)
    own.update(net)
    assert torch.equal(copy.module[1].running_mean, torch.ones(4))
    assert torch.equal(own.module[1].running_mean, torch.zeros(4))


def test_ema_state_is_in_the_state_dict_and_has_no_grad():
    ema = EMA(_net(), 0.99)
    keys = ema.state_dict().keys()
    assert "num_updates" in keys and "module.0.weight" in keys and "module.1.running_var" in keys
    assert not any(p.requires_grad for p in ema.parameters())


# ---- count-table clustering scores ------------------------------------------------------------
def _labelings():
    """(predictions, targets, classes): random ones, and the degenerate cases scikit-learn has rules for."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        k, n = int(rng.integers(2, 12)), int(rng.integers(1, 400))
        targets = rng.integers(0, k, n)
        preds = (targets * 3 + trial) % k if trial % 3 == 0 else rng.integers(0, int(rng.integers(1, k + 1)), n)
        yield preds, targets, k
    yield np.zeros(50, int), np.arange(50) % 5, 5  # one cluster
    yield np.arange(50) % 5, np.zeros(50, int), 5  # one class
    yield np.full(20, 3), np.full(20, 3), 4  # all equal
    yield np.arange(7), np.arange(7), 7  # identical, all singletons
    yield np.array([1]), np.array([2]), 3  # one image


@pytest.mark.parametrize("metric_class, reference, tolerance", [
    (AdjustedRandIndex, sk_metrics.adjusted_rand_score, 1e-15),
    (NormalizedMutualInfo, sk_metrics.normalized_mutual_info_score, 1e-15),
])  # fmt: skip
def test_count_table_nmi_and_ari_equal_scikit_learn(metric_class, reference, tolerance):
    for preds, targets, k in _labelings():
        metric = metric_class(k)
        half = len(preds) // 2  # two updates: the table accumulates
        metric.update(torch.as_tensor(preds[:half]), torch.as_tensor(targets[:half]))
        metric.update(torch.as_tensor(preds[half:]), torch.as_tensor(targets[half:]))
        expected = reference(targets, preds)
        assert metric.score(metric.counts) == pytest.approx(expected, abs=tolerance), (preds, targets)
        assert float(metric.compute()) == pytest.approx(expected, abs=1e-7)


def test_count_tables_of_two_processes_sum_to_the_whole_set():
    rng = np.random.default_rng(1)
    preds, targets = torch.as_tensor(rng.integers(0, 4, 90)), torch.as_tensor(rng.integers(0, 4, 90))
    whole, first, second = NormalizedMutualInfo(4), NormalizedMutualInfo(4), NormalizedMutualInfo(4)
    whole.update(preds, targets)
    first.update(preds[:50], targets[:50])
    second.update(preds[50:], targets[50:])
    first.merge_state(second)  # what the DDP sync does: the "sum" reduction of the counts
    assert torch.equal(first.counts, whole.counts) and float(first.compute()) == float(whole.compute())


def test_classification_metrics_compute_nmi_and_ari_without_warnings():
    metrics = classification_metrics(4, "val/")
    logits, targets = torch.randn(32, 4, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics' NMI/ARI warned about sparse tensors here
        update_classification_metrics(metrics, logits, targets)
        values = metrics.compute()
    preds = logits.argmax(dim=1).numpy()
    assert float(values["val/nmi"]) == pytest.approx(sk_metrics.normalized_mutual_info_score(targets.numpy(), preds), abs=1e-6)
    assert float(values["val/ari"]) == pytest.approx(sk_metrics.adjusted_rand_score(targets.numpy(), preds), abs=1e-6)
