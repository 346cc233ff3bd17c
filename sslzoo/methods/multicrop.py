"""What SwAV, Suave, DINO and Daino share: a multi-crop network, online probes, the labeled
rows (optionally extended with MixUp/CutMix copies) and the count-proportional loss weights."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..functional import extend_with_mix, share_weights, soft_cross_entropy
from ..modules import MultiCropNetwork, OnlineProbes
from ..errors import ConfigError
from ..modules.online_probes import PROBE_REDUCTIONS
from .base import SSLMethod
from ..choices import check_choice
from .ranges import BELOW_ONE, POSITIVE, UNIT, check_range, check_ranges

ProbeReduction = Literal[PROBE_REDUCTIONS]

GLOBAL_CROPS = 2  # the unlabeled stream's first two crops are the global ones (SwAV's crops_for_assign)


def crops_of(unlabeled: dict) -> list[torch.Tensor]:
    crops = unlabeled["x"]
    crops = [crops] if isinstance(crops, torch.Tensor) else list(crops)
    if len(crops) < GLOBAL_CROPS:
        raise ConfigError(
            f"{len(crops)} unlabeled crop(s) per image, but the multi-crop losses need at least {GLOBAL_CROPS} global crops; "
            "use the 'multicrop' unlabeled view (num_global 2)"
        )
    return crops


class MultiCropMethod(SSLMethod):
    """Base of the clustering-based methods.

    Args:
        temperature: T, the prediction temperature (logits = scores / T), > 0 (SwAV/Suave: 0.1).
        label_smoothing: epsilon of the label smoothing of the labeled targets, in [0, 1) (Suave/Daino: 0.01).
        mixup_labeled: extend the labeled batch with one mixed copy (MixUp or CutMix,
            lam ~ Beta(mix_alpha, mix_alpha), CutMix with probability mix_switch_prob).
        mix_alpha: alpha of the mixing coefficient's Beta(alpha, alpha), > 0 (Suave: 1).
        mix_switch_prob: probability of CutMix rather than MixUp, in [0, 1] (Suave: 0.5).
        mix_seed: seed of the mixing draws; each step's draws depend only on
            (mix_seed, step, rank), so a resumed run mixes the same way.
        probe_label_smoothing: label smoothing of the online probes, in [0, 1); None (default) takes
            `label_smoothing`, as Suave's code does (suave/main_suave.py:682).
        probe_reduction: "sum" (default, Suave's code adds the probes' CE) or "mean" of the probes' CE.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        label_smoothing: float = 0.01,
        mixup_labeled: bool = False,
        mix_alpha: float = 1.0,
        mix_switch_prob: float = 0.5,
        mix_seed: int = 0,
        probe_label_smoothing: float | None = None,
        probe_reduction: ProbeReduction = "sum",
        **kwargs,
    ):
        check_range("temperature", temperature, POSITIVE)
        check_ranges(BELOW_ONE, label_smoothing=label_smoothing, probe_label_smoothing=probe_label_smoothing)
        check_range("mix_alpha", mix_alpha, POSITIVE)
        check_range("mix_switch_prob", mix_switch_prob, UNIT)
        check_choice("probe_reduction", probe_reduction, ProbeReduction)
        super().__init__(**kwargs)
        self.temperature, self.label_smoothing = temperature, label_smoothing
        self.mixup_labeled, self.mix_alpha, self.mix_switch_prob = mixup_labeled, mix_alpha, mix_switch_prob
        self.mix_seed, self.probe_reduction = mix_seed, probe_reduction
        self.probe_label_smoothing = label_smoothing if probe_label_smoothing is None else probe_label_smoothing
        head = self.network.head
        self.probes = OnlineProbes({"backbone": self.network.backbone.feature_dim, **head.tap_dims}, self.num_classes)

    def build_head(self, feature_dim: int) -> torch.nn.Module:
        raise NotImplementedError

    def build_network(self, backbone, num_classes):
        return MultiCropNetwork(backbone, self.build_head(backbone.feature_dim))

    def trainable_modules(self):
        return [self.network, self.probes]

    # ---- pieces of a step ----------------------------------------------------
    def step_generator(self) -> torch.Generator:
        """Random draws of this step (mixing): a function of (mix_seed, step, rank) only."""
        return torch.Generator().manual_seed(hash((self.mix_seed, self.global_step, self.global_rank)) % 2**63)

    def labeled_rows(self, labeled: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Labeled images and their smoothed one-hot targets, extended with mixed copies when asked."""
        targets = F.one_hot(labeled["y"], self.num_classes).float()
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / self.num_classes
        if not self.mixup_labeled:
            return labeled["x"], targets
        return extend_with_mix(labeled["x"], targets, generator, self.mix_alpha, self.mix_switch_prob)

    def probe_loss(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Online probes on the first len(labels) rows (the clean labeled images), detached."""
        taps = {name: outputs[name][: len(labels)] for name in self.probes.heads}
        loss, accuracy = self.probes.loss(taps, labels, self.probe_label_smoothing, self.probe_reduction)
        for name, value in accuracy.items():
            self.log(f"train/probe_{name}_acc", value, batch_size=len(labels))
        return loss

    def supervised_loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the labeled rows; logs it unweighted, with the rows' agreement
        with their dominant target class (how well the labeled set is being fitted)."""
        loss = soft_cross_entropy(scores.float() / self.temperature, targets)
        fitted = (scores.argmax(dim=1) == targets.argmax(dim=1)).float().mean()
        self.log("train/labeled_ce", loss.detach(), batch_size=len(targets))
        self.log("train/labeled_fit", fitted, batch_size=len(targets))
        return loss

    def weighted_terms(self, parts: dict[str, tuple[torch.Tensor, int]], probe: tuple[torch.Tensor, int] | None) -> dict[str, torch.Tensor]:
        """Suave/Daino weighting: each mean loss times its share of the predicting rows;
        the (detached) probes get the clean labeled rows' share of the same total."""
        rows = {name: count for name, (_, count) in parts.items()}
        total = sum(rows.values())
        terms = {name: weight * parts[name][0] for name, weight in share_weights(rows).items()}
        if probe is not None:
            terms["probe"] = probe[1] / total * probe[0]
        return terms

    # ---- evaluation -------------------------------------------------------------
    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_network(x)["scores"].float() / self.temperature


class PretextMixin:
    """For self-supervised pretexts (SwAV, DINO): their scores are not classes, so
    evaluation reads the online linear probe on the backbone of the trained network."""

    eval_network_name = "online network + linear probe"

    def eval_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.backbone(x)

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.probes.heads["backbone"](self.eval_features(x))
