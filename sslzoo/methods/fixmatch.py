from __future__ import annotations

import torch

from ..functional import confident_pseudo_labels, cross_entropy, masked_cross_entropy
from .base import EMABuffers, SSLMethod
from .ranges import NON_NEGATIVE, UNIT, check_range


class FixMatch(SSLMethod):
    """FixMatch (Sohn et al., 2020).

    For a labeled batch of B and unlabeled batch of muB:
      1. one forward over [labeled weak; unlabeled weak; unlabeled strong] (one BN batch);
      2. pseudo-label q = argmax softmax(weak logits), mask = max prob >= threshold;
      3. L = CE(labeled) + lambda_u * mean_over_muB[mask * CE(strong logits, q)]  (Eq. 4).
    Evaluation uses the EMA of the weights (decay 0.999). As in the official code
    (`fixmatch.py`: `ema.apply(utils.model_vars())`, the trainable variables), only the
    parameters are averaged: the evaluated network takes the live BatchNorm statistics
    (`ema_buffers: copy`).

    Args:
        threshold: tau, the confidence max p above which a pseudo-label is kept, in [0, 1]
            (paper: 0.95; 0 keeps every pseudo-label).
        lambda_u: lambda_u, weight of the unlabeled loss, >= 0 (paper: 1).
        ema_decay: decay of the EMA of the weights that is evaluated, in [0, 1) (paper: 0.999); None disables.
        ema_buffers: the EMA's BN statistics: "copy" the live ones (the code averages the trainable
            variables only), "average" them, or keep its "own".
    """

    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}

    def __init__(self, threshold: float = 0.95, lambda_u: float = 1.0, ema_decay: float | None = 0.999, ema_buffers: EMABuffers = "copy",
                 **kwargs):
        # An argument, not kwargs.setdefault: the CLI passes every parent argument, so the parent's default would win.
        super().__init__(ema_decay=ema_decay, ema_buffers=ema_buffers, **kwargs)
        check_range("threshold", threshold, UNIT, "a softmax confidence: above 1 no pseudo-label is ever kept")
        check_range("lambda_u", lambda_u, NON_NEGATIVE)
        self.threshold = threshold
        self.lambda_u = lambda_u

    def training_step(self, batch, batch_idx):
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        weak, strong = unlabeled["x"]
        num_labeled, num_unlabeled = len(labeled["y"]), len(weak)
        logits = self.network(torch.cat([labeled["x"], weak, strong]))
        logits_labeled, logits_weak, logits_strong = logits.split([num_labeled, num_unlabeled, num_unlabeled])

        pseudo_labels, mask, _ = confident_pseudo_labels(logits_weak, self.threshold)
        self.log_pseudo_labels(pseudo_labels, mask, unlabeled["y_hidden"])
        return self.total_loss(
            {
                "sup": cross_entropy(logits_labeled, labeled["y"]),
                "unsup": self.lambda_u * masked_cross_entropy(logits_strong, pseudo_labels, mask),
            },
            num_labeled,
        )
