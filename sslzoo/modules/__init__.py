"""Small stateful modules; all state lives in parameters or persistent buffers."""
from .center import Center
from .classifier import Classifier
from .distribution_alignment import DistributionAlignment
from .ema import EMA
from .eval_metrics import classification_metrics, update_classification_metrics
from .feature_queue import FeatureQueue
from .heads import DINOHead, SwAVHead
from .labeled_memory_bank import LabeledMemoryBank
from .multicrop import MultiCropNetwork, resolution_runs
from .online_probes import OnlineProbes
from .prototypes import Prototypes

__all__ = [
    "EMA", "Center", "Classifier", "DINOHead", "DistributionAlignment", "FeatureQueue", "LabeledMemoryBank", "MultiCropNetwork",
    "OnlineProbes", "Prototypes", "SwAVHead", "classification_metrics", "resolution_runs", "update_classification_metrics",
]
