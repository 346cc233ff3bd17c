from __future__ import annotations

import torch
from torchmetrics import Metric

from ..functional.clustering import confusion_counts, matched_accuracy_from_counts


class ClusterAccuracy(Metric):
    """Hungarian-matched accuracy accumulated as a confusion-count table.

    Used instead of torchmetrics' ClusterAccuracy, which needs the compiled
    `torch_linear_assignment` package and gathers every prediction under DDP;
    summing a K x K table across processes is exact and cheap, and scipy solves it.
    """

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("counts", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self.counts += confusion_counts(preds, targets, self.num_classes, self.num_classes)

    def compute(self) -> torch.Tensor:
        return torch.tensor(matched_accuracy_from_counts(self.counts))
