"""Label-free scores of predictions against classes, accumulated as a prediction x class count
table: summing the tables of every process gives the exact global score under DDP, and no
prediction is gathered (torchmetrics' NMI/ARI gather them all and build a sparse table)."""
from __future__ import annotations

import torch
from torchmetrics import Metric

from ..functional.cluster_metrics import adjusted_rand_index, normalized_mutual_info
from ..functional.clustering import confusion_counts, matched_accuracy_from_counts


class CountTableMetric(Metric):
    """A score of the summed counts[predicted, true] table; subclasses name the score in `score`."""

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("counts", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self.counts += confusion_counts(preds, targets, self.num_classes, self.num_classes)

    def compute(self) -> torch.Tensor:
        return torch.tensor(self.score(self.counts))

    @staticmethod
    def score(counts: torch.Tensor) -> float:
        raise NotImplementedError


class ClusterAccuracy(CountTableMetric):
    """Hungarian-matched accuracy. Used instead of torchmetrics' ClusterAccuracy, which needs the
    compiled `torch_linear_assignment` package; scipy solves the K x K table."""

    score = staticmethod(matched_accuracy_from_counts)


class NormalizedMutualInfo(CountTableMetric):
    """NMI (arithmetic normalisation), scikit-learn's `normalized_mutual_info_score`."""

    score = staticmethod(normalized_mutual_info)


class AdjustedRandIndex(CountTableMetric):
    """ARI, scikit-learn's `adjusted_rand_score`."""

    score = staticmethod(adjusted_rand_index)
