"""Pure tensor functions: losses, pseudo-labels, ramps, schedules, cluster matching."""
from .clustering import cluster_accuracy, confusion_counts, hungarian_match
from .losses import masked_cross_entropy, soft_cross_entropy, softmax_kl, softmax_mse
from .pseudo_labels import confident_pseudo_labels
from .ramps import linear_rampup, sigmoid_rampup
from .schedules import SCHEDULES, constant, fixmatch_cosine, linear_decay, warmup_cosine

__all__ = [
    "SCHEDULES",
    "cluster_accuracy",
    "confident_pseudo_labels",
    "confusion_counts",
    "constant",
    "fixmatch_cosine",
    "hungarian_match",
    "linear_decay",
    "linear_rampup",
    "masked_cross_entropy",
    "sigmoid_rampup",
    "soft_cross_entropy",
    "softmax_kl",
    "softmax_mse",
    "warmup_cosine",
]
