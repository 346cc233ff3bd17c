from __future__ import annotations

import torch

from ..functional import cross_view_cross_entropy, sharpened_targets
from ..errors import ConfigError
from ..modules import Center, DINOHead
from .base import EMABuffers, EMASchedule, required_num_classes
from .multicrop import GLOBAL_CROPS, MultiCropMethod, PretextMixin, crops_of
from .ranges import AT_LEAST_ONE, BELOW_ONE, NON_NEGATIVE, POSITIVE, check_range, check_ranges


class DINOTargets(MultiCropMethod):
    """Self-distillation with a momentum teacher (DINO, Caron et al. 2021), shared by DINO and Daino.

    The EMA teacher (momentum `ema_decay` -> 1, cosine, per optimizer step; BN statistics
    its own) sees only the two global crops; its targets are
      p_t = softmax((g_t(x) - c) / tau_t),  tau_t linear from `warmup_teacher_temperature`
    to `teacher_temperature` over `teacher_temperature_warmup_epochs` epochs, then constant;
    the student predicts them from every other crop at temperature T:
      L_dino = mean over global t and crops v != t of mean_b H(p_t, softmax(g_s(x_v) / T)).
    `out_dim` (None: the number of classes) is the head's output size.
    The centre c <- m c + (1 - m) mean(g_t) is all-reduced and updated once per optimizer step.

    Args:
        out_dim: K, the head's outputs; None: one per class.
        hidden_dim: width of the head's MLP (DINO: 2048).
        bottleneck_dim: size of the bottleneck before the last layer (DINO: 256).
        norm_last_layer: weight-normalise the last layer with a fixed norm (DINO: on).
        warmup_teacher_temperature: tau_t at the start of its warm-up, > 0 (DINO: 0.04).
        teacher_temperature: tau_t after the warm-up, > 0 (DINO: 0.04 to 0.07).
        teacher_temperature_warmup_epochs: epochs of tau_t's linear warm-up, >= 0 (DINO: 30).
        center_momentum: m, momentum of the centre c, in [0, 1) (DINO: 0.9).
        ema_decay: the teacher's momentum at the start, in [0, 1) (DINO: 0.996); required.
        ema_schedule: the momentum's schedule, "cosine" to 1 (DINO) or "constant".
        ema_buffers: the teacher's BN statistics: its "own" (DINO), "copy" or "average".
    """

    def __init__(
        self,
        out_dim: int | None = None,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        norm_last_layer: bool = True,
        warmup_teacher_temperature: float = 0.04,
        teacher_temperature: float = 0.07,
        teacher_temperature_warmup_epochs: int = 30,
        center_momentum: float = 0.9,
        ema_decay: float = 0.996,
        ema_schedule: EMASchedule = "cosine",
        ema_buffers: EMABuffers = "own",
        **kwargs,
    ):
        check_ranges(AT_LEAST_ONE, out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim)
        check_ranges(POSITIVE, warmup_teacher_temperature=warmup_teacher_temperature, teacher_temperature=teacher_temperature)
        check_range("teacher_temperature_warmup_epochs", teacher_temperature_warmup_epochs, NON_NEGATIVE)
        check_range("center_momentum", center_momentum, BELOW_ONE)
        out_dim = out_dim or required_num_classes(kwargs.get("num_classes"))
        self.head_options = dict(out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim, norm_last_layer=norm_last_layer)
        if ema_decay is None:
            raise ConfigError("DINO needs its momentum teacher: set ema_decay (e.g. 0.996)")
        super().__init__(ema_decay=ema_decay, ema_schedule=ema_schedule, ema_buffers=ema_buffers, **kwargs)
        self.warmup_teacher_temperature, self.teacher_temperature = warmup_teacher_temperature, teacher_temperature
        self.teacher_temperature_warmup_epochs = teacher_temperature_warmup_epochs
        self.center = Center(out_dim, center_momentum)
        self._pending_center: list[torch.Tensor] = []

    def build_head(self, feature_dim):
        return DINOHead(feature_dim, **self.head_options)

    def teacher_temperature_at(self, epoch: int) -> float:
        """np.linspace(warmup, final, warmup_epochs)[epoch] during the warm-up, then final."""
        warmup = self.teacher_temperature_warmup_epochs
        if epoch >= warmup:
            return self.teacher_temperature
        fraction = epoch / (warmup - 1) if warmup > 1 else 1.0
        return self.warmup_teacher_temperature + fraction * (self.teacher_temperature - self.warmup_teacher_temperature)

    @torch.no_grad()
    def teacher_targets(self, globals_: list[torch.Tensor]) -> list[torch.Tensor]:
        scores = self.ema.module(globals_)["scores"].float()
        temperature = self.teacher_temperature_at(self.current_epoch)
        self.log("train/teacher_temperature", temperature, batch_size=len(globals_[0]))
        self._pending_center.append(scores)
        return list(sharpened_targets(scores, self.center.value, temperature).split(len(globals_[0])))

    def distillation_loss(self, crop_scores: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        return cross_view_cross_entropy([s.float() / self.temperature for s in crop_scores], targets, list(range(GLOBAL_CROPS)))

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        for scores in self._pending_center:
            self.center.update(scores)
        self._pending_center.clear()


class DINO(PretextMixin, DINOTargets):
    """DINO self-supervised pretraining (e.g. to initialise Daino). The labeled stream only
    trains the detached online probes; validation reads the backbone probe.

    Args:
        out_dim: K, the head's outputs (DINO: 65536).
    """

    views = {"labeled": ["weak"], "unlabeled": [{"name": "multicrop"}]}

    def __init__(self, out_dim: int = 65536, **kwargs):
        super().__init__(out_dim=out_dim, **kwargs)

    def training_step(self, batch, batch_idx):
        labeled, crops = batch["labeled"], crops_of(batch["unlabeled"])
        num_labeled, batch_size = len(labeled["y"]), len(crops[0])
        outputs = self.network([labeled["x"], *crops])
        targets = self.teacher_targets(crops[:GLOBAL_CROPS])
        crop_scores = outputs["scores"][num_labeled:].split(batch_size)
        terms = {"dino": self.distillation_loss(list(crop_scores), targets), "probe": self.probe_loss(outputs, labeled["y"])}
        return self.total_loss(terms, batch_size)
