"""The confusion table a picture shows: true class x predicted class, with clusters mapped to
classes the way the clustering metrics map them."""
from __future__ import annotations

import numpy as np
import torch

from ..functional.cluster_metrics import cluster_to_class_map

MAPPING_NAMES = {True: "one-to-one, Hungarian", False: "many-to-one, majority class"}


def confusion_table(counts: torch.Tensor, outputs_are_clusters: bool) -> tuple[np.ndarray, str]:
    """From counts[k, c] (images predicted k whose class is c) to (table[true, predicted], x-axis label).

    Clusters are mapped to classes as `val/cluster_acc` maps them (SCAN's `hungarian_evaluate`):
    one-to-one when there are as many clusters as classes, else each cluster to its majority
    class; the table's trace is then that accuracy's numerator."""
    counts = counts.detach().cpu().long()
    num_outputs, num_classes = counts.shape
    if not outputs_are_clusters:
        if num_outputs != num_classes:
            raise ValueError(f"a classifier's confusion needs as many outputs as classes, got {num_outputs} x {num_classes}")
        return counts.T.numpy(), "predicted class"
    mapping = cluster_to_class_map(counts)
    mapped = torch.zeros(num_classes, num_classes, dtype=torch.long).index_add_(0, mapping, counts)
    return mapped.T.numpy(), f"predicted class (cluster mapped {MAPPING_NAMES[num_outputs == num_classes]})"
