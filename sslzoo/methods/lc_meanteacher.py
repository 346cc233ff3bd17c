from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn

from ..functional import clustering_distances, flat_pair_distances, local_clustering_loss_of, sigmoid_rampup
from ..modules.distributed import all_reduce_mean
from .meanteacher import MeanTeacher
from .ranges import NON_NEGATIVE, POSITIVE, UNIT, UNIT_OPEN, check_range, check_ranges


class LCMeanTeacher(MeanTeacher):
    """Local Clustering on top of Mean Teacher (Chen et al., LC-MT).

      L = CE + lambda_1 r(e; 5) L_cons + lambda_2 r(e - e_lc; R) L_lc
      L_lc = L(Z_l, Z_u) + L(Z_u, Z_u),  L(A, B) = sum_ij d_ij w_ij m_ij / sum_ij m_ij
      d_ij = mean_dims (z_i - z_j)^2,  m_ij = 1[d_ij <= eps],  w_ij = exp(-d_ij / eps)
    on the student's feature vector z (CNN-13's 128-d pooled layer).

    Where the official code and the paper text differ we follow the code, whose
    epsilons (40, 50) were tuned for it: d is the mean (not the sum) over feature
    dimensions; the loss is normalised by the number of neighbour pairs (U-U self-pairs
    included); w is not detached, so gradient reaches both ends of a pair. The LC ramp
    is r(e - lc_start_epoch; R) with r(x) = 0 for x <= 0, else exp(-5 (1 - x / R)^2),
    evaluated per epoch; e counts epochs from 1 as the official loop does (`epochs_from_one`),
    so LC first acts in our (zero-based) epoch `lc_start_epoch`, the official epoch after it.

    The paper's eps is tied to CNN-13's feature scale. With another backbone, set
    `epsilon_quantile` instead: when LC switches on, eps becomes that quantile of the
    batch's pair distances (averaged over ranks), is kept in a buffer and stays fixed.
    `train/lc_neighbour_fraction` (pairs within eps) is logged either way.

    Distribution collapse (too large eps or lambda_2 pull every z to one point): the
    per-dimension feature variance is logged as `train/feature_var`; when it falls
    below `collapse_ratio` x its value when LC switched on, a warning says so (and
    `stop_on_collapse` ends the run).

    Args:
        lc_weight: lambda_2, weight of the local-clustering loss after its ramp-up, >= 0 (paper: 10).
        epsilon: eps, the neighbour radius on the mean squared feature distance, > 0 (code: 50 on
            CIFAR-10, 40 on SVHN); ignored with epsilon_quantile.
        lc_start_epoch: e_lc, LC acts from this (zero-based) epoch on, the official epoch after it
            (paper: 600 on CIFAR-10, 300 on SVHN); 0 or less starts it at once.
        lc_rampup_epochs: R, epochs of LC's sigmoid ramp-up, >= 0 (code: 100).
        epsilon_quantile: instead of epsilon, the quantile in (0, 1) of the batch's pair distances
            that becomes eps when LC switches on (ours, for other backbones); None uses epsilon.
        collapse_ratio: warn when the feature variance falls below this fraction (in [0, 1]) of its
            value at LC's start (ours: 0.01; 0 never warns).
        stop_on_collapse: end the run instead of warning on collapse.
    """

    def __init__(
        self,
        lc_weight: float = 10.0,
        epsilon: float = 50.0,
        lc_start_epoch: int = 600,
        lc_rampup_epochs: int = 100,
        epsilon_quantile: float | None = None,
        collapse_ratio: float = 0.01,
        stop_on_collapse: bool = False,
        **kwargs,
    ):
        check_range("epsilon_quantile", epsilon_quantile, UNIT_OPEN, "a fraction of the pairs")
        check_range("epsilon", epsilon, POSITIVE, "a distance")
        check_ranges(NON_NEGATIVE, lc_weight=lc_weight, lc_rampup_epochs=lc_rampup_epochs)
        check_range("collapse_ratio", collapse_ratio, UNIT)
        super().__init__(**kwargs)
        self.lc_weight, self.epsilon_quantile = lc_weight, epsilon_quantile
        self.register_buffer("epsilon", torch.tensor(0.0 if epsilon_quantile is not None else float(epsilon)))
        self.lc_start_epoch, self.lc_rampup_epochs = lc_start_epoch, lc_rampup_epochs
        self.collapse_ratio, self.stop_on_collapse = collapse_ratio, stop_on_collapse
        self.register_buffer("reference_feature_var", torch.zeros(()))
        self._collapse_reported = False

    def lc_weight_now(self) -> float:
        # Official: `if epoch >= lc_start_loss_epoch`, weight r(epoch - start; R), and r(x <= 0) = 0.
        since_start = self.ramp_epoch - self.lc_start_epoch
        return 0.0 if since_start <= 0 else self.lc_weight * sigmoid_rampup(since_start, self.lc_rampup_epochs)

    def loss_terms(self, student_features, student_logits, teacher_logits, labels):
        terms = super().loss_terms(student_features, student_logits, teacher_logits, labels)
        weight = self.lc_weight_now()
        self.log("train/lc_weight", weight, batch_size=len(labels))
        feature_var = student_features.detach().float().var(dim=0).mean()
        self.log("train/feature_var", feature_var, batch_size=len(labels))
        labeled, unlabeled = student_features[: len(labels)], student_features[len(labels) :]
        # One pair of distance matrices serves the loss (with gradient, once LC is on) and the monitoring.
        with torch.set_grad_enabled(weight > 0 and torch.is_grad_enabled()):
            matrices = clustering_distances(labeled, unlabeled)
        distances = flat_pair_distances(tuple(m.detach() for m in matrices))
        if weight > 0 and self.epsilon == 0 and self.epsilon_quantile is not None:
            self.epsilon.copy_(all_reduce_mean(torch.quantile(distances.float(), self.epsilon_quantile)))
        if self.epsilon > 0:
            self.log("train/lc_epsilon", self.epsilon, batch_size=len(labels))
            self.log("train/lc_neighbour_fraction", (distances <= self.epsilon).float().mean(), batch_size=len(labels))
        if weight > 0:
            terms["local_clustering"] = weight * local_clustering_loss_of(matrices, float(self.epsilon))
            self.check_collapse(feature_var)
        return terms

    def check_collapse(self, feature_var: torch.Tensor) -> None:
        if self.reference_feature_var == 0:
            self.reference_feature_var.copy_(feature_var)
            return
        if self._collapse_reported or feature_var >= self.collapse_ratio * self.reference_feature_var:
            return
        message = (
            f"local clustering is collapsing the features at epoch {self.current_epoch}: their variance fell from "
            f"{float(self.reference_feature_var):.3g} (LC start) to {float(feature_var):.3g}. Lower epsilon "
            f"({float(self.epsilon):.3g}) or lc_weight ({self.lc_weight}), or start LC later."
        )
        self._collapse_reported = True
        if self.stop_on_collapse:
            raise RuntimeError(message)
        rank_zero_warn(message)
