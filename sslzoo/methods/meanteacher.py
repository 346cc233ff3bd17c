from __future__ import annotations

import torch

from ..functional import cross_entropy, sigmoid_rampup, softmax_mse
from .base import SSLMethod


class MeanTeacher(SSLMethod):
    """Mean Teacher (Tarvainen & Valpola, 2017), in the setting LC-MT builds on.

    Student and teacher see independent augmentations of every image (labeled
    and unlabeled). The teacher is the EMA of the student, runs in train mode
    (as in the reference code) without gradient, and keeps its own BN statistics.
      L = CE(student, labeled) + w(epoch) * mean_batch,classes (softmax s - softmax t)^2
    with w = consistency_weight * exp(-5 (1 - epoch / rampup_epochs)^2).
    The consistency term's gradient flows through the student (USB's does not).
    """

    views = {"labeled": ["weak", "weak"], "unlabeled": ["weak", "weak"]}

    def __init__(
        self,
        consistency_weight: float = 100.0,
        rampup_epochs: int = 5,
        ema_decay: float = 0.99,
        ema_warmup: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("ema_buffers", "own")
        super().__init__(ema_decay=ema_decay, **kwargs)
        self.consistency_weight = consistency_weight
        self.rampup_epochs = rampup_epochs
        self.ema_warmup = ema_warmup

    def ema_decay_at(self, num_updates: int) -> float:
        # The original Mean Teacher code warms the decay up as 1 - 1/(step + 1); LC-MT does not.
        return min(1.0 - 1.0 / (num_updates + 1), self.ema.decay) if self.ema_warmup else self.ema.decay

    def consistency_weight_now(self) -> float:
        return self.consistency_weight * sigmoid_rampup(self.current_epoch, self.rampup_epochs)

    def training_step(self, batch, batch_idx):
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        (labeled_student, labeled_teacher), (unlabeled_student, unlabeled_teacher) = labeled["x"], unlabeled["x"]
        num_labeled = len(labeled["y"])
        student_features, student_logits = self.network.features_and_logits(torch.cat([labeled_student, unlabeled_student]))
        with torch.no_grad():
            teacher_logits = self.ema(torch.cat([labeled_teacher, unlabeled_teacher]))

        teacher_labels = teacher_logits.argmax(-1)[num_labeled:]
        self.log_pseudo_labels(teacher_labels, torch.ones_like(teacher_labels, dtype=torch.bool), unlabeled["y_hidden"])
        terms = self.loss_terms(student_features, student_logits, teacher_logits, labeled["y"])
        return self.total_loss(terms, num_labeled)

    def loss_terms(self, student_features, student_logits, teacher_logits, labels) -> dict[str, torch.Tensor]:
        """Supervised CE on the labeled part plus the ramped consistency over the whole batch
        (labeled first). Subclasses add terms on the student's features."""
        weight = self.consistency_weight_now()
        self.log("train/consistency_weight", weight, batch_size=len(labels))
        return {
            "sup": cross_entropy(student_logits[: len(labels)], labels),
            "consistency": weight * softmax_mse(student_logits, teacher_logits),
        }
