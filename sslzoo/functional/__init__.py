"""Pure tensor functions: losses, pseudo-labels, ramps, schedules, cluster matching, Sinkhorn, mixing."""
from .cluster_metrics import (
    adjusted_rand_index,
    contingency,
    many_to_one_map,
    normalized_mutual_info,
    one_to_one_map,
    remapped_topk_accuracy,
)
from .cluster_targets import ClusteringStep, assign_batch_targets, clustering_loss, initial_targets
from .clustering import cluster_accuracy, confusion_counts, hungarian_match
from .contrastive import nt_xent
from .k_best_assignments import k_best_assignments
from .local_clustering import (
    clustering_distances,
    flat_pair_distances,
    local_clustering_loss,
    local_clustering_loss_of,
    mean_squared_distances,
    neighbour_loss,
    pair_clustering_loss,
    pair_distances,
)
from .losses import cross_entropy, cross_view_cross_entropy, masked_cross_entropy, share_weights, soft_cross_entropy, softmax_kl, softmax_mse
from .mixing import cutmix_box, extend_with_mix, mix_pair
from .neighbours import mine_neighbours, neighbour_purity
from .permutations import class_output_costs, nearby_permutations, oracle_accuracy_curve
from .phases import boosted_phase, boosted_total_epochs
from .precision import float32, upcast
from .pseudo_labels import confident_labels, confident_pseudo_labels, sharpened_targets, softmax_probs
from .ramps import linear_rampup, sigmoid_rampup
from .scan import confidence_based_cross_entropy, entropy, scan_loss, scan_validation_loss
from .sinkhorn import queue_extended_codes, sinkhorn
from .simmatch import aggregate, align_distribution, instance_logits, propagate_labels, unfold
from .schedules import SCHEDULES, constant, cosine_between, fixmatch_cosine, linear_decay, warmup_cosine

__all__ = [
    "ClusteringStep",
    "assign_batch_targets",
    "boosted_phase",
    "class_output_costs",
    "nearby_permutations",
    "oracle_accuracy_curve",
    "boosted_total_epochs",
    "clustering_loss",
    "initial_targets",
    "k_best_assignments",
    "SCHEDULES",
    "aggregate",
    "align_distribution",
    "local_clustering_loss",
    "local_clustering_loss_of",
    "clustering_distances",
    "flat_pair_distances",
    "neighbour_loss",
    "mean_squared_distances",
    "pair_distances",
    "pair_clustering_loss",
    "propagate_labels",
    "unfold",
    "cluster_accuracy",
    "confident_labels",
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
    "cosine_between",
    "cross_entropy",
    "cross_view_cross_entropy",
    "float32",
    "instance_logits",
    "queue_extended_codes",
    "sharpened_targets",
    "softmax_probs",
    "upcast",
    "cutmix_box",
    "extend_with_mix",
    "mix_pair",
    "share_weights",
    "sinkhorn",
    "confidence_based_cross_entropy",
    "entropy",
    "scan_loss",
    "scan_validation_loss",
    "adjusted_rand_index",
    "contingency",
    "many_to_one_map",
    "mine_neighbours",
    "neighbour_purity",
    "normalized_mutual_info",
    "nt_xent",
    "one_to_one_map",
    "remapped_topk_accuracy",
]
