from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info

from ..functional import cross_view_cross_entropy, queue_extended_codes
from ..errors import ConfigError
from ..modules import FeatureQueue, SwAVHead
from .base import required_num_classes
from .multicrop import GLOBAL_CROPS, MultiCropMethod, PretextMixin, crops_of
from .ranges import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, check_range, check_ranges


class SwAVCodes(MultiCropMethod):
    """Swapped prediction with Sinkhorn codes (SwAV, Caron et al. 2020), shared by SwAV and Suave.

    Per step, for the two global crops i of the unlabeled batch (B images, V crops):
      q_i = Sinkhorn([queue_i . C^T ; scores_i] / eps)[-B:]   (equal-partition codes, Eq. 3)
      L_swav = mean over i and crops v != i of mean_b H(q_i, softmax(scores_v / T))
    Scores are cosine similarities to the unit-norm prototypes C. The queue keeps the
    last `queue_length` embeddings of the global crops (of every process), starts
    filling at `queue_start_epoch` and is used once full. With `momentum_teacher`, the
    codes come from the EMA network's scores of the global crops (ema_decay, cosine to 1);
    the official code EMAs the parameters only (ema_buffers "own") and re-normalises the
    teacher's prototypes before every step too.

    Args:
        num_prototypes: K, the prototypes C; None: one per class.
        hidden_dim: width of the projector's hidden layer (SwAV: 2048).
        projection_dim: D, size of the L2-normalised embedding z (SwAV: 128).
        epsilon: eps, the Sinkhorn entropy regularisation, > 0 (SwAV: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations, >= 1 (SwAV: 3).
        queue_length: embeddings the queue keeps (of every process), >= 0; 0 disables it
            (SwAV CIFAR: 0; ImageNet: 3840).
        queue_start_epoch: the epoch the queue starts filling, >= 0 (SwAV ImageNet: 15).
        freeze_prototypes_steps: optimizer steps with the prototypes frozen, >= 0 (SwAV: one epoch, 5005 on ImageNet).
        momentum_teacher: codes from the EMA network's scores (ema_decay, cosine to 1) instead of the online one.
    """

    def __init__(
        self,
        num_prototypes: int | None = None,
        hidden_dim: int = 2048,
        projection_dim: int = 128,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_length: int = 0,
        queue_start_epoch: int = 0,
        freeze_prototypes_steps: int = 0,
        momentum_teacher: bool = False,
        **kwargs,
    ):
        check_ranges(AT_LEAST_ONE, num_prototypes=num_prototypes, hidden_dim=hidden_dim, projection_dim=projection_dim,
                     sinkhorn_iterations=sinkhorn_iterations)
        check_range("epsilon", epsilon, POSITIVE)
        check_ranges(NON_NEGATIVE, queue_length=queue_length, queue_start_epoch=queue_start_epoch, freeze_prototypes_steps=freeze_prototypes_steps)
        num_prototypes = num_prototypes or required_num_classes(kwargs.get("num_classes"))
        self.head_options = dict(hidden_dim=hidden_dim, projection_dim=projection_dim, num_prototypes=num_prototypes)
        if momentum_teacher:
            kwargs.setdefault("ema_decay", 0.99)
            if kwargs["ema_decay"] is None:
                raise ConfigError("momentum_teacher needs ema_decay (the teacher's momentum)")
        super().__init__(**kwargs)
        self.epsilon, self.sinkhorn_iterations = epsilon, sinkhorn_iterations
        self.queue_start_epoch, self.freeze_prototypes_steps = queue_start_epoch, freeze_prototypes_steps
        self.momentum_teacher = momentum_teacher
        self.queue = FeatureQueue(queue_length, GLOBAL_CROPS, projection_dim) if queue_length > 0 else None
        self._pending_queue: list[torch.Tensor] = []

    def build_head(self, feature_dim):
        return SwAVHead(feature_dim, **self.head_options)

    @property
    def prototypes(self):
        return self.network.head.prototypes

    def on_train_batch_start(self, batch, batch_idx):
        # Both prototype layers back to unit rows before each step (suave/main_suave.py:572-580):
        # the teacher's drift off the sphere with each EMA update.
        self.prototypes.normalize_()
        if self.momentum_teacher:
            self.ema.module.head.prototypes.normalize_()

    def on_after_backward(self) -> None:
        if self.global_step < self.freeze_prototypes_steps:
            self.prototypes.weight.grad = None

    # ---- codes -------------------------------------------------------------------
    @torch.no_grad()
    def codes(self, global_scores: list[torch.Tensor], global_z: list[torch.Tensor], prototypes: torch.Tensor) -> list[torch.Tensor]:
        """Sinkhorn codes of each global crop, the batch extended by this process's share of the queue."""
        use_queue = self.queue is not None and self.queue.full
        if self.queue is not None:
            self.log("train/queue_fill", self.queue.fill, batch_size=len(global_z[0]))
        codes = []
        for i, scores in enumerate(global_scores):
            queued = self.queue.shard(self.global_rank, self.trainer.world_size)[:, i] if use_queue else None
            codes.append(queue_extended_codes(scores, prototypes, queued, self.epsilon, self.sinkhorn_iterations))
        if self.queue is not None and self.current_epoch >= self.queue_start_epoch:
            self._pending_queue.append(torch.stack(global_z, dim=1).detach())
        return codes

    def global_codes(self, outputs: dict[str, torch.Tensor], globals_: list[torch.Tensor], offset: int) -> list[torch.Tensor]:
        """Codes for the global crops, from this forward's rows or from the momentum teacher."""
        batch = len(globals_[0])
        if self.momentum_teacher:
            with torch.no_grad():
                teacher = self.ema.module(globals_)
            scores, z, prototypes = teacher["scores"], teacher["z"], self.ema.module.head.prototypes.weight
            offset = 0
        else:
            scores, z, prototypes = outputs["scores"], outputs["z"], self.prototypes.weight
        rows = [slice(offset + i * batch, offset + (i + 1) * batch) for i in range(GLOBAL_CROPS)]
        return self.codes([scores[r].detach().float() for r in rows], [z[r].detach().float() for r in rows], prototypes.detach().float())

    def swapped_loss(self, crop_scores: list[torch.Tensor], codes: list[torch.Tensor]) -> torch.Tensor:
        return cross_view_cross_entropy([s.float() / self.temperature for s in crop_scores], codes, list(range(GLOBAL_CROPS)))

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        for items in self._pending_queue:
            was_full = self.queue.full
            self.queue.push(items)
            if self.queue.full and not was_full:
                rank_zero_info(f"SwAV queue full ({self.queue.length}) at step {self.global_step}: Sinkhorn now uses it")
        self._pending_queue.clear()


class SwAV(PretextMixin, SwAVCodes):
    """SwAV self-supervised pretraining (Caron et al. 2020), e.g. to initialise Suave.

    Loss: the swapped prediction over all crops of the unlabeled stream; the labeled
    stream only trains the detached online probes, whose backbone probe is the
    classifier used by validation.

    Args:
        num_prototypes: K, the prototypes (SwAV: 3000).
        ema_decay: decay of an EMA of the weights (the momentum teacher's with momentum_teacher); None: no EMA.
    """

    views = {"labeled": ["weak"], "unlabeled": [{"name": "multicrop"}]}

    def __init__(self, num_prototypes: int = 3000, ema_decay: float | None = None, **kwargs):
        super().__init__(num_prototypes=num_prototypes, ema_decay=ema_decay, **kwargs)

    def training_step(self, batch, batch_idx):
        labeled, crops = batch["labeled"], crops_of(batch["unlabeled"])
        num_labeled, batch_size = len(labeled["y"]), len(crops[0])
        outputs = self.network([labeled["x"], *crops])
        codes = self.global_codes(outputs, crops[:GLOBAL_CROPS], offset=num_labeled)
        crop_scores = outputs["scores"][num_labeled:].split([len(c) for c in crops])
        terms = {"swav": self.swapped_loss(list(crop_scores), codes), "probe": self.probe_loss(outputs, labeled["y"])}
        return self.total_loss(terms, batch_size)
