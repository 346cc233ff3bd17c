from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from .cluster_accuracy import AdjustedRandIndex, ClusterAccuracy, NormalizedMutualInfo


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Top-1, top-5, balanced accuracy, and the label-free view of the same predictions:
    Hungarian-matched cluster accuracy, NMI and ARI, the last three from a class x class count
    table (synced across processes by summing it)."""
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "balanced_acc": MulticlassAccuracy(num_classes, average="macro"),
        "cluster_acc": ClusterAccuracy(num_classes),
        "nmi": NormalizedMutualInfo(num_classes),
        "ari": AdjustedRandIndex(num_classes),
    }
    if num_classes > 5:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)


def update_classification_metrics(metrics: MetricCollection, logits, targets) -> None:
    preds = logits.argmax(dim=-1)
    for name, metric in metrics.items(keep_base=True):
        # Accuracy metrics take logits (top-k); clustering metrics take hard assignments.
        metric.update(logits if isinstance(metric, MulticlassAccuracy) else preds, targets)
