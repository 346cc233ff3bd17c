from __future__ import annotations

from typing import Literal

import torch

from ..functional import (
    confident_labels, cross_entropy, instance_logits, masked_cross_entropy, propagate_labels, soft_cross_entropy, softmax_probs,
)
from ..modules import Classifier, DistributionAlignment, LabeledMemoryBank
from ..errors import ConfigError
from .base import EMABuffers, SSLMethod
from ..choices import check_choice, choices_of
from .ranges import AT_LEAST_ONE, BELOW_ONE, NON_NEGATIVE, POSITIVE, UNIT, check_range, check_ranges

EvaluatedWeights = Literal["ema", "student"]
EVALUATED_WEIGHTS = choices_of(EvaluatedWeights)


class SimMatch(SSLMethod):
    """SimMatch (Zheng et al., CVPR 2022): semantic and instance similarity, propagated
    through a memory bank of labeled embeddings.

    Per step, with weak-view class probabilities p^w and embeddings z^w (no gradient):
      1. p^w <- DA(p^w): divide by the mean of the last `da_length` batch means;
      2. q^w = softmax(z^w . bank / t) over the K labeled embeddings;
      3. q_hat = normalize(q^w * p^w gathered at the bank labels)          (unfolding, Eq. 8);
         p_hat = alpha p^w + (1 - alpha) * q^w summed per bank label      (aggregation, Eq. 10);
      4. L_u  = mean_muB[ 1(max p_hat >= tau) H(p_hat, softmax(logits^s)) ];
         L_in = mean_muB[ H(q_hat, softmax(z^s . bank / t)) ];
      5. L = L_s + lambda_u L_u + lambda_in L_in; then write the labeled z into the bank.
    For the first `bank_warmup_epochs` the bank is still random: p_hat = p^w and L_in = 0.

    Two bank variants: `use_teacher=False` (CIFAR) takes the weak outputs from the
    online network and keeps a temporal ensemble of bank entries (bank_momentum 0.7);
    `use_teacher=True` (ImageNet) takes them from the EMA teacher (0.999) and
    overwrites the entries (bank_momentum 0).

    `evaluate` picks the evaluated weights: "ema" (CIFAR, paper §4.1: "the final performance
    using an exponential moving average") or "student" (ImageNet, paper §4.2 and the official
    engine.py, whose `validate` calls SimMatch.forward -> `self.main`). None follows the bank
    variant: "student" with the teacher, "ema" without. `ema_buffers` None follows it too:
    "own" with the teacher, "copy" without (see `sslzoo.modules.EMA`).

    Args:
        threshold: tau, the confidence max p_hat above which a pseudo-label is kept, in [0, 1] (paper: 0.95).
        lambda_u: lambda_u, weight of the unlabeled loss L_u, >= 0 (paper: 1).
        lambda_in: lambda_in, weight of the instance-similarity loss L_in, >= 0 (paper: 1).
        temperature: t, temperature of the similarities to the bank, > 0 (paper: 0.1).
        alpha: alpha, the share of the class prediction in the aggregated p_hat, in [0, 1] (paper: 0.9).
        da_length: batches in distribution alignment's moving mean, >= 1 (code: 32).
        bank_momentum: momentum of the labeled bank's entries, in [0, 1) (CIFAR code: 0.7, a
            temporal ensemble; ImageNet: 0, overwrite).
        use_teacher: weak outputs from the EMA teacher (ImageNet) instead of the online network (CIFAR).
        projection_dim: size of the L2-normalised embedding z kept in the bank (paper: 128).
        bank_warmup_epochs: epochs with the random bank unused (p_hat = p, L_in = 0), >= 0 (ours: 1).
        ema_decay: decay of the EMA teacher / evaluated weights, in [0, 1) (paper: 0.999).
        ema_buffers: the EMA's BN statistics; None follows the bank variant ("own" with the
            teacher, "copy" without).
        evaluate: the evaluated weights, "ema" (CIFAR) or "student" (ImageNet); None follows the
            bank variant.
    """

    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}

    def __init__(
        self,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        lambda_in: float = 1.0,
        temperature: float = 0.1,
        alpha: float = 0.9,
        da_length: int = 32,
        bank_momentum: float = 0.7,
        use_teacher: bool = False,
        projection_dim: int = 128,
        bank_warmup_epochs: int = 1,
        ema_decay: float = 0.999,
        ema_buffers: EMABuffers | None = None,
        evaluate: EvaluatedWeights | None = None,
        **kwargs,
    ):
        evaluate = check_choice("evaluate", evaluate or ("student" if use_teacher else "ema"), EvaluatedWeights)
        check_range("threshold", threshold, UNIT, "a softmax confidence: above 1 no pseudo-label is ever kept")
        check_ranges(NON_NEGATIVE, lambda_u=lambda_u, lambda_in=lambda_in, bank_warmup_epochs=bank_warmup_epochs)
        check_range("temperature", temperature, POSITIVE)
        check_range("alpha", alpha, UNIT)
        check_range("bank_momentum", bank_momentum, BELOW_ONE)
        check_ranges(AT_LEAST_ONE, da_length=da_length, projection_dim=projection_dim)
        if ema_decay is None and (evaluate == "ema" or use_teacher):
            raise ConfigError("SimMatch's EMA teacher and EMA evaluation need ema_decay (0.999); set it, or use_teacher: false and evaluate: student")
        self.projection_dim = projection_dim
        # Official code: ImageNet's teacher averages parameters only and, run in train mode, keeps its
        # own BN statistics (simmatch models/simmatch.py `momentum_update_ema` without --eman;
        # simmatch.py `model.train()`); the CIFAR port (USB semilearn/core/utils/misc.py `EMA.update`)
        # averages parameters and copies the buffers. An argument here, not kwargs.setdefault: the CLI
        # passes every parent argument, so a parent default would override the variant's.
        ema_buffers = ema_buffers or ("own" if use_teacher else "copy")
        super().__init__(ema_decay=ema_decay, ema_buffers=ema_buffers, **kwargs)
        self.threshold, self.lambda_u, self.lambda_in = threshold, lambda_u, lambda_in
        self.temperature, self.alpha = temperature, alpha
        self.use_teacher, self.bank_warmup_epochs = use_teacher, bank_warmup_epochs
        self.evaluate = evaluate
        self.distribution_alignment = DistributionAlignment(self.num_classes, da_length)
        self.bank = LabeledMemoryBank(projection_dim, bank_momentum)
        self._pending_bank_writes: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def eval_network(self) -> torch.nn.Module:
        return self.network if self.evaluate == "student" else self.ema.module

    def build_network(self, backbone, num_classes):
        return Classifier(backbone, num_classes, projection_dim=self.projection_dim, head=self.hparams.head)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule
        if stage == "fit" and not hasattr(datamodule, "labeled_indices"):
            raise ConfigError("SimMatch builds its memory bank from the labeled split: train it with an sslzoo datamodule")
        if stage == "fit" and len(self.bank) == 0:
            labeled = datamodule.labeled_indices
            self.bank.reset(labeled, datamodule.pool.train.targets[labeled], torch.Generator().manual_seed(0))

    def idle_modules(self):
        # While the bank warms up no term uses this step's projection (its writes are detached).
        return [self.network.projector] if self.current_epoch < self.bank_warmup_epochs else []

    # ---- one step ----------------------------------------------------------
    def training_step(self, batch, batch_idx):
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        weak, strong = unlabeled["x"]
        num_labeled, num_unlabeled = len(labeled["y"]), len(weak)

        if self.use_teacher:
            logits, z = self.network.logits_and_projection(torch.cat([labeled["x"], strong]))
            logits_labeled, logits_strong = logits.split([num_labeled, num_unlabeled])
            z_strong = z[num_labeled:]
            with torch.no_grad():
                teacher_logits, teacher_z = self.ema.module.logits_and_projection(torch.cat([labeled["x"], weak]))
            logits_weak, z_weak, z_labeled = teacher_logits[num_labeled:], teacher_z[num_labeled:], teacher_z[:num_labeled]
        else:
            logits, z = self.network.logits_and_projection(torch.cat([labeled["x"], weak, strong]))
            logits_labeled, logits_weak, logits_strong = logits.split([num_labeled, num_unlabeled, num_unlabeled])
            z_labeled, z_weak, z_strong = z.split([num_labeled, num_unlabeled, num_unlabeled])

        p_hat, q_hat = self.pseudo_labels(logits_weak.detach(), z_weak.detach())
        pseudo_labels, mask = confident_labels(p_hat, self.threshold)
        self.log_pseudo_labels(pseudo_labels, mask, unlabeled["y_hidden"])
        terms = {
            "sup": cross_entropy(logits_labeled, labeled["y"]),
            "unsup": self.lambda_u * masked_cross_entropy(logits_strong, p_hat, mask),
        }
        if q_hat is not None:
            strong_instance_logits = instance_logits(z_strong, self.bank.embeddings, self.temperature)
            terms["instance"] = self.lambda_in * soft_cross_entropy(strong_instance_logits, q_hat)
        self._pending_bank_writes.append((labeled["idx"], z_labeled.detach()))
        return self.total_loss(terms, num_labeled)

    @torch.no_grad()
    def pseudo_labels(self, logits_weak: torch.Tensor, z_weak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(p_hat, q_hat); q_hat is None while the bank warms up."""
        probs = self.distribution_alignment(softmax_probs(logits_weak))
        if self.current_epoch < self.bank_warmup_epochs:
            return probs, None
        similarities = softmax_probs(instance_logits(z_weak, self.bank.embeddings, self.temperature))
        return propagate_labels(probs, similarities, self.bank.labels, self.alpha)

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        for indices, embeddings in self._pending_bank_writes:
            self.bank.update(indices, embeddings)
        self._pending_bank_writes.clear()
