from __future__ import annotations

import torch
from torchmetrics import Metric

from ..functional.cluster_metrics import (
    adjusted_rand_index,
    cluster_to_class_map,
    normalized_mutual_info,
    remapped_topk_accuracy,
)
from ..functional.clustering import confusion_counts


class ClusteringMetrics(Metric):
    """SCAN's `hungarian_evaluate` over a whole eval set: accuracy after mapping clusters to
    classes (one-to-one by Hungarian matching; many-to-one, each cluster to its majority
    class, when there are more clusters than classes), NMI, ARI, top-5 after remapping and
    the confusion table. With `cluster_to_class` set before `compute` (e.g. named from a few
    labeled images), "named_acc" is the accuracy under that map: a classification accuracy,
    not a clustering one. Probabilities are kept (and gathered under DDP) for the top-5 figure.
    """

    full_state_update = False

    def __init__(self, num_clusters: int, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_clusters, self.num_classes = num_clusters, num_classes
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")
        self.cluster_to_class: torch.Tensor | None = None

    @property
    def mapping(self) -> str:
        return "one_to_one" if self.num_clusters == self.num_classes else "many_to_one"

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        self.probs.append(probs.float())
        self.targets.append(targets.long())

    def compute(self) -> dict[str, torch.Tensor]:
        probs = torch.cat(self.probs) if isinstance(self.probs, list) else self.probs
        targets = torch.cat(self.targets) if isinstance(self.targets, list) else self.targets
        if len(targets) == 0:
            raise ValueError("no evaluation samples: the clustering metrics need at least one")
        counts = confusion_counts(probs.argmax(dim=1), targets, self.num_clusters, self.num_classes)
        matched = cluster_to_class_map(counts).to(probs.device)
        values = {
            "cluster_acc": (matched[probs.argmax(dim=1)] == targets).float().mean(),
            "nmi": torch.tensor(normalized_mutual_info(counts)),
            "ari": torch.tensor(adjusted_rand_index(counts)),
            "confusion": counts,
        }
        if self.num_classes > 5:
            values["cluster_acc_top5"] = torch.tensor(remapped_topk_accuracy(probs, targets, matched, k=5))
        if self.cluster_to_class is not None:
            values["named_acc"] = (self.cluster_to_class.to(probs.device)[probs.argmax(dim=1)] == targets).float().mean()
        return values
