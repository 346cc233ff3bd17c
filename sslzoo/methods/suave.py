from __future__ import annotations

from typing import Literal

import torch

from ..errors import ConfigError
from ..functional import mix_pair, soft_cross_entropy
from .base import required_num_classes
from ..choices import check_choice, choices_of
from .multicrop import GLOBAL_CROPS, crops_of
from .swav import SwAVCodes

MixedWeight = Literal["rows", "official"]
Evaluated = Literal["online", "ema"]
MIXED_WEIGHTS = choices_of(MixedWeight)
EVALUATED = choices_of(Evaluated)


class Suave(SwAVCodes):
    """Suave (Fini et al., CVPR 2023): SwAV made semi-supervised with K = #classes prototypes,
    so the prototype scores are the class logits.

    One step (Eq. 3, the "concatenated cross-entropy"):
      1. labeled rows: [x_l ; mix(x_l, flip x_l)] with smoothed one-hot targets;
         unlabeled: 2 global + N local crops and, with `mixup_unlabeled`, one mixed view
         m = mix(g_0, flip g_1);
      2. one forward per resolution (labeled + globals + mixed share one BN batch);
      3. q_0, q_1 = Sinkhorn codes of the global crops (eps, 3 iterations, queue);
      4. L_u = swapped prediction over all crops, L_l = H(y, softmax(s_l / T)),
         L_mix = H(lam q_0 + (1 - lam) flip q_1, softmax(s_m / T));
      5. L = sum of each term times its share of the predicting rows; detached online
         probes on the backbone, hidden and projection outputs get the clean labeled share.

    `mixed_weight`: the official code (the published numbers) weighs L_mix by the *number of
    mixed views* (1) instead of their rows (B), so its share of the loss is 1/total rows;
    "official" (default) reproduces it. "rows" (our variant, opt-in) counts its B rows like
    every other part, i.e. one mean cross-entropy over all rows as the paper's Eq. 3 reads.

    `evaluate`: "online" (default) classifies with the trained network, as the official code
    does (validate(val_loader, model), suave/main_suave.py:501) even with a momentum teacher;
    "ema" evaluates the EMA copy instead (needs ema_decay).

    Args:
        mixup_unlabeled: add the mixed unlabeled view m = mix(g_0, flip g_1) and its loss L_mix (paper: on).
        mixup_labeled: extend the labeled rows with mixed copies (paper: on).
        mixed_weight: L_mix's share, "official" (1 / total rows, the code) or "rows" (B rows, Eq. 3 as written).
        evaluate: the evaluated network, "online" (the code) or "ema" (needs ema_decay).
    """

    views = {
        "labeled": [{"name": "simclr", "strength": 0.5, "blur_prob": 0.0}],
        "unlabeled": [{"name": "multicrop"}],
    }

    def __init__(
        self, mixup_unlabeled: bool = True, mixup_labeled: bool = True, mixed_weight: MixedWeight = "official", evaluate: Evaluated = "online",
        **kwargs,
    ):
        if kwargs.get("num_prototypes") not in (None, required_num_classes(kwargs.get("num_classes"))):
            raise ConfigError("Suave's prototypes are its classes: leave num_prototypes unset (it equals num_classes)")
        check_choice("mixed_weight", mixed_weight, MixedWeight)
        check_choice("evaluate", evaluate, Evaluated)
        super().__init__(mixup_labeled=mixup_labeled, **kwargs)
        if evaluate == "ema" and self.ema is None:
            raise ConfigError("evaluate='ema' needs an EMA copy to evaluate: set ema_decay (or momentum_teacher: true)")
        self.mixup_unlabeled, self.mixed_weight, self.evaluate = mixup_unlabeled, mixed_weight, evaluate

    @property
    def eval_network(self) -> torch.nn.Module:
        return self.ema.module if self.evaluate == "ema" else self.network

    def training_step(self, batch, batch_idx):
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        crops = crops_of(unlabeled)
        generator = self.step_generator()
        labeled_x, labeled_targets = self.labeled_rows(labeled, generator)
        num_rows, batch_size = len(labeled_x), len(crops[0])
        inputs = [labeled_x, *crops[:GLOBAL_CROPS]]
        if self.mixup_unlabeled:
            mixed, lam = mix_pair(crops[0], crops[1].flip(0), generator, self.mix_alpha, self.mix_switch_prob)
            inputs.append(mixed)
        outputs = self.network(inputs + crops[GLOBAL_CROPS:])

        codes = self.global_codes(outputs, crops[:GLOBAL_CROPS], offset=num_rows)
        self.log_pseudo_labels(codes[0].argmax(dim=1), torch.ones_like(codes[0][:, 0]), unlabeled["y_hidden"])
        scores = outputs["scores"]
        labeled_scores, rest = scores[:num_rows], scores[num_rows:]
        num_mixed = batch_size if self.mixup_unlabeled else 0
        num_globals = GLOBAL_CROPS * batch_size
        global_scores, mixed_scores, local_scores = rest.split([num_globals, num_mixed, len(rest) - num_globals - num_mixed])
        crop_scores = list(global_scores.split(batch_size)) + (list(local_scores.split(batch_size)) if len(local_scores) else [])
        parts = {
            "unsup": (self.swapped_loss(crop_scores, codes), batch_size * len(crops)),
            "sup": (self.supervised_loss(labeled_scores, labeled_targets), num_rows),
        }
        if self.mixup_unlabeled:
            mixed_targets = torch.lerp(codes[1].flip(0), codes[0], lam)
            loss = soft_cross_entropy(mixed_scores.float() / self.temperature, mixed_targets)
            parts["mixed"] = (loss, batch_size if self.mixed_weight == "rows" else 1)
        probe = (self.probe_loss(outputs, labeled["y"]), len(labeled["y"]))
        return self.total_loss(self.weighted_terms(parts, probe), len(labeled["y"]))
