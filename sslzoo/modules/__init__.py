"""Small stateful modules; all state lives in parameters or persistent buffers."""
from .classifier import Classifier
from .ema import EMA
from .eval_metrics import classification_metrics, update_classification_metrics

__all__ = ["EMA", "Classifier", "classification_metrics", "update_classification_metrics"]
