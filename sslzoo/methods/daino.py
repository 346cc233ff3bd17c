from __future__ import annotations

from ..errors import ConfigError
from .base import required_num_classes
from .dino import DINOTargets
from .multicrop import GLOBAL_CROPS, crops_of


class Daino(DINOTargets):
    """Daino (Fini et al., CVPR 2023): DINO made semi-supervised with out_dim = #classes.

    One step: labeled rows [x_l ; mix(x_l, flip x_l)] (smoothed one-hot targets) and every
    unlabeled crop go through the student in one forward per resolution; the teacher sees
    only the unlabeled global crops and gives centred, sharpened targets (tau_t 0.04 -> 0.07
    over 10 epochs); L = share-weighted sum of the DINO loss over all crops and
    H(y, softmax(s_l / T)). Validation uses the teacher's head, as the official code does.
    Unlabeled mixing is not part of Daino (its code leaves it unimplemented).

    Args:
        teacher_temperature_warmup_epochs: epochs of tau_t's warm-up from 0.04 to 0.07 (Daino: 10).
        ema_decay: the teacher's momentum at the start, in [0, 1) (Daino: 0.99).
        mixup_labeled: extend the labeled rows with mixed copies (Daino: on).
        norm_last_layer: weight-normalise the head's last layer with a fixed norm (Daino: off).
    """

    ema_role = "teacher (EMA)"

    views = {
        "labeled": [{"name": "simclr", "strength": 0.5, "blur_prob": 0.0}],
        "unlabeled": [{"name": "multicrop"}],
    }

    def __init__(self, teacher_temperature_warmup_epochs: int = 10, ema_decay: float = 0.99, mixup_labeled: bool = True, norm_last_layer: bool = False, **kwargs):
        if kwargs.get("out_dim") not in (None, required_num_classes(kwargs.get("num_classes"))):
            raise ConfigError("Daino's head outputs are its classes: leave out_dim unset (it equals num_classes)")
        super().__init__(
            teacher_temperature_warmup_epochs=teacher_temperature_warmup_epochs, ema_decay=ema_decay,
            mixup_labeled=mixup_labeled, norm_last_layer=norm_last_layer, **kwargs,
        )

    def training_step(self, batch, batch_idx):
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        crops = crops_of(unlabeled)
        labeled_x, labeled_targets = self.labeled_rows(labeled, self.step_generator())
        num_rows, batch_size = len(labeled_x), len(crops[0])
        outputs = self.network([labeled_x, *crops])
        targets = self.teacher_targets(crops[:GLOBAL_CROPS])
        self.log_pseudo_labels(targets[0].argmax(dim=1), targets[0].new_ones(batch_size), unlabeled["y_hidden"])
        scores = outputs["scores"]
        parts = {
            "unsup": (self.distillation_loss(list(scores[num_rows:].split(batch_size)), targets), batch_size * len(crops)),
            "sup": (self.supervised_loss(scores[:num_rows], labeled_targets), num_rows),
        }
        probe = (self.probe_loss(outputs, labeled["y"]), len(labeled["y"]))
        return self.total_loss(self.weighted_terms(parts, probe), len(labeled["y"]))
