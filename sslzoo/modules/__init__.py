"""Small stateful modules; all state lives in parameters or persistent buffers."""
from .classifier import Classifier
from .distribution_alignment import DistributionAlignment
from .ema import EMA
from .eval_metrics import classification_metrics, update_classification_metrics
from .labeled_memory_bank import LabeledMemoryBank

__all__ = ["EMA", "Classifier", "DistributionAlignment", "LabeledMemoryBank", "classification_metrics", "update_classification_metrics"]
