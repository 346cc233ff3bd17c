"""Sharded evaluation over processes: 15 test images on 2 processes (shards of 8 and 7, no padding)
report exactly what 1 process reports, each metric counting the 15 images once."""
import lightning as L
import pytest
import torch

import tiny
from sslzoo.methods import FixMatch
from sslzoo.methods.clustering_eval import ClusterMethod

NUM_TEST = 15


def _synced(metric, count) -> float:
    """`count(metric)` on the metric's state summed/gathered over processes."""
    with metric.sync_context(should_sync=True):
        return float(count(metric))


class CountingFixMatch(FixMatch):
    """Logs how many samples each kind of metric state holds over all processes."""

    def _log_counts(self, metrics, prefix: str) -> None:
        counts = {
            "loss": _synced(self.eval_losses[prefix.strip("/")], lambda m: m.weight),
            "acc": _synced(metrics["acc"], lambda m: m.tp.sum() + m.fn.sum()),  # micro top-1: each sample is a tp or a fn
            "cluster_acc": _synced(metrics["cluster_acc"], lambda m: m.counts.sum()),
            "nmi": _synced(metrics["nmi"], lambda m: m.counts.sum()),
        }
        self.log_dict({f"{prefix}count_{name}": value for name, value in counts.items()})

    def on_validation_epoch_end(self):
        self._log_counts(self.val_metrics, "val/")
        super().on_validation_epoch_end()

    def on_test_epoch_end(self):
        self._log_counts(self.test_metrics, "test/")
        super().on_test_epoch_end()


class CountingClusterMethod(ClusterMethod):
    def on_test_epoch_end(self):
        self.log("test/count", _synced(self.test_metrics, lambda m: len(torch.cat(m.targets) if isinstance(m.targets, list) else m.targets)))
        super().on_test_epoch_end()


def _evaluate(tmp_path, method, stage: str, world_size: int) -> dict:
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, num_test=NUM_TEST), eval_batch_size=4)
    options = dict(devices=2, strategy="ddp_spawn") if world_size == 2 else {}
    trainer = tiny.tiny_trainer(tmp_path / f"{stage}{world_size}", limit_val_batches=None, **options)
    (results,) = getattr(trainer, stage)(method, datamodule=dm, verbose=False)
    return results


def _by_hand(tmp_path, method) -> tuple[float, float]:
    """Accuracy and mean loss over the 15 test images, in one process."""
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, num_test=NUM_TEST), eval_batch_size=NUM_TEST)
    dm.setup("test")
    (batch,) = list(dm.test_dataloader())
    with torch.no_grad():
        logits = method.eval().eval_logits(batch["x"])
    assert len(batch["y"]) == NUM_TEST
    return (logits.argmax(dim=1) == batch["y"]).float().mean().item(), torch.nn.functional.cross_entropy(logits, batch["y"]).item()


@pytest.mark.parametrize("stage, prefix", [("test", "test/"), ("validate", "val/")])
def test_classification_metrics_and_loss_on_uneven_shards_equal_one_process(tmp_path, stage, prefix):
    L.seed_everything(0)
    method = CountingFixMatch(num_classes=4, backbone="tiny_mlp", ema_decay=None)
    single = _evaluate(tmp_path, method, stage, world_size=1)
    double = _evaluate(tmp_path, method, stage, world_size=2)
    assert single.keys() == double.keys() and f"{prefix}balanced_acc" in single
    for name in single:
        assert double[name] == pytest.approx(single[name], abs=1e-6), name
    assert {name: double[f"{prefix}count_{name}"] for name in ("loss", "acc", "cluster_acc", "nmi")} == dict.fromkeys(
        ("loss", "acc", "cluster_acc", "nmi"), NUM_TEST
    )
    acc, loss = _by_hand(tmp_path, method)
    assert 0 < acc < 1  # a padded duplicate would change k/15
    assert double[f"{prefix}acc"] == pytest.approx(acc, abs=1e-6)
    assert double[f"{prefix}loss"] == pytest.approx(loss, abs=1e-5)  # a mean of the shards' means would not be


def test_clustering_metrics_on_uneven_shards_equal_one_process(tmp_path):
    L.seed_everything(0)
    method = CountingClusterMethod(num_classes=4, backbone="tiny_mlp", name_clusters_with_labels=True)
    single = _evaluate(tmp_path, method, "test", world_size=1)
    double = _evaluate(tmp_path, method, "test", world_size=2)
    assert single.keys() == double.keys() and {"test/cluster_acc", "test/nmi", "test/ari", "test/named_acc"} <= single.keys()
    for name in single:
        assert double[name] == pytest.approx(single[name], abs=1e-6), name
    assert double["test/count"] == NUM_TEST
