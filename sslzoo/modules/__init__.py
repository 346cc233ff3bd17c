"""Small stateful modules; all state lives in parameters or persistent buffers."""
from .center import Center
from .classifier import Classifier
from .cluster_target_table import ClusterTargetTable
from .cluster_heads import ClusterHeads, ClusterNetwork
from .clustering_metrics import ClusteringMetrics
from .distribution_alignment import DistributionAlignment
from .ema import EMA
from .eval_metrics import classification_metrics, update_classification_metrics
from .feature_queue import FeatureQueue
from .heads import DINOHead, ProjectionHead, SwAVHead
from .labeled_memory_bank import LabeledMemoryBank
from .multicrop import MultiCropNetwork, resolution_runs
from .neighbour_table import NeighbourTable
from .online_probes import OnlineProbes
from .prototypes import Prototypes

__all__ = [
    "Center", "Classifier", "ClusterHeads", "ClusterNetwork", "ClusterTargetTable", "ClusteringMetrics", "DINOHead",
    "DistributionAlignment",
    "EMA", "FeatureQueue", "LabeledMemoryBank", "MultiCropNetwork", "NeighbourTable", "OnlineProbes", "ProjectionHead",
    "Prototypes", "SwAVHead", "classification_metrics", "resolution_runs", "update_classification_metrics",
]
