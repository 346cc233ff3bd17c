from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info

from ..functional import cross_entropy, sigmoid_rampup, softmax_mse
from ..nets.weight_norm import data_dependent_init_classifier_, has_weight_norm
from ..errors import ConfigError
from .base import EMABuffers, SSLMethod
from .ranges import NON_NEGATIVE, check_ranges


class MeanTeacher(SSLMethod):
    """Mean Teacher (Tarvainen & Valpola, 2017), in the setting LC-MT builds on.

    Student and teacher see independent augmentations of every image (labeled
    and unlabeled). The teacher is the EMA of the student, runs in train mode
    (as in the reference code) without gradient, and keeps its own BN statistics.
      L = CE(student, labeled) + w(e) * mean_batch,classes (softmax s - softmax t)^2
    with w = consistency_weight * exp(-5 (1 - e / rampup_epochs)^2), per epoch.
    The consistency term's gradient flows through the student (USB's does not).

    Options that follow LC-MT's code (train_mean_teacher*.py, utils/train_helper.py):
        separate_forwards: labeled and unlabeled images go through the network in two
            forwards (student, then teacher), so batch statistics (mean-only BN) are per
            sub-batch, as the official code's `model(label_x)`, `model(unlabel_x)`; off: one
            concatenated forward (one BN batch).
        epochs_from_one: the ramps read the epoch counted from 1, as the official loop
            `for epoch in range(1, ...)` does (our epoch 0 is its epoch 1: consistency weight
            100 r(1; 5) = 4.08, not 100 r(0; 5)); off: counted from 0.
        data_dependent_init: at the start of a fresh fit, the weight-normed layers (CNN-13,
            the weight_norm head) are initialised on one labeled batch (`param_init`), see
            `initialise_weight_norm`; networks without weight norm are left alone.
    The official code also builds and initialises its teacher independently (other random
    weights, another batch); here the teacher starts as a copy of the initialised student.

    Args:
        consistency_weight: w_max, the consistency weight after the ramp-up, >= 0 (LC-MT: 100).
        rampup_epochs: T, epochs of the sigmoid ramp-up exp(-5 (1 - e / T)^2) of the consistency
            weight, >= 0 (LC-MT: 5; 0 starts at full weight).
        ema_decay: alpha, the teacher's EMA decay of the student's weights, in [0, 1) (LC-MT: 0.99).
        ema_warmup: warm the decay up as min(1 - 1 / (t + 1), ema_decay), as the original Mean
            Teacher code does (LC-MT: off).
        separate_forwards: labeled and unlabeled images in two forwards (per-sub-batch BN
            statistics), as LC-MT's code; off: one concatenated forward.
        epochs_from_one: the ramps count epochs from 1, as LC-MT's loop (on); off: from 0.
        data_dependent_init: LC-MT's data-dependent weight-norm init on one labeled batch at the
            start of a fresh fit (on); networks without weight norm are left alone.
        ema_buffers: the teacher's BN statistics: its "own" (it runs in train mode, LC-MT),
            "copy" the student's, or "average" them.
    """

    ema_role = "teacher (EMA)"

    views = {"labeled": ["weak", "weak"], "unlabeled": ["weak", "weak"]}

    def __init__(
        self,
        consistency_weight: float = 100.0,
        rampup_epochs: int = 5,
        ema_decay: float = 0.99,
        ema_warmup: bool = False,
        separate_forwards: bool = False,
        epochs_from_one: bool = True,
        data_dependent_init: bool = True,
        ema_buffers: EMABuffers = "own",
        **kwargs,
    ):
        if ema_decay is None:
            raise ConfigError(f"{type(self).__name__}'s teacher is the EMA of the student: set ema_decay (LC-MT: 0.99)")
        check_ranges(NON_NEGATIVE, consistency_weight=consistency_weight, rampup_epochs=rampup_epochs)
        # An argument, not kwargs.setdefault: the CLI passes every parent argument, so the parent's default would win.
        super().__init__(ema_decay=ema_decay, ema_buffers=ema_buffers, **kwargs)
        self.consistency_weight = consistency_weight
        self.rampup_epochs = rampup_epochs
        self.ema_warmup = ema_warmup
        self.separate_forwards = separate_forwards
        self.epochs_from_one = epochs_from_one
        self.data_dependent_init = data_dependent_init
        # Saved with the checkpoint, so that a resumed (or a second) fit does not initialise again.
        self.register_buffer("weight_norm_initialised", torch.zeros((), dtype=torch.bool))

    def ema_decay_at(self, num_updates: int) -> float:
        # The original Mean Teacher code warms the decay up as 1 - 1/(step + 1); LC-MT does not.
        return min(1.0 - 1.0 / (num_updates + 1), self.ema.decay) if self.ema_warmup else self.ema.decay

    @property
    def ramp_epoch(self) -> int:
        """The epoch the ramps read (the official code's epoch number)."""
        return self.current_epoch + (1 if self.epochs_from_one else 0)

    def consistency_weight_now(self) -> float:
        return self.consistency_weight * sigmoid_rampup(self.ramp_epoch, self.rampup_epochs)

    # ---- fit start: LC-MT's data-dependent weight-norm init ------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.weight_norm_initialised:
            return
        if self.data_dependent_init and not self.hparams.init_from and has_weight_norm(self.network):
            self.initialise_weight_norm(self.labeled_init_batch().to(self.device))
        self.weight_norm_initialised.fill_(True)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        # Checkpoints from before the flag existed hold trained weights: never initialise them again.
        checkpoint.get("state_dict", {}).setdefault("weight_norm_initialised", torch.ones((), dtype=torch.bool))

    def labeled_init_batch(self) -> torch.Tensor:
        """`batch_size` random labeled images in the labeled stream's first view (the official
        `next(iter(train_label_loader))[0][0]`), drawn from the run's seed (the same on every process)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "labeled_dataloader"):
            raise ConfigError(
                "data_dependent_init needs a labeled batch from an sslzoo datamodule; train with one, "
                "or set --model.init_args.data_dependent_init false"
            )
        dataset = datamodule.labeled_dataloader(views=datamodule.stream_views()["labeled"][:1]).dataset
        seed = torch.initial_seed() % 2**31
        positions = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[: datamodule.batch_size]
        return torch.stack([dataset[(int(p), seed + int(p))]["x"] for p in positions])

    def initialise_weight_norm(self, x: torch.Tensor) -> None:
        """LC-MT's `param_init` on `x`, in train mode (dropout on): each weight-normed conv is scaled
        to output std 1 on the batch and the head to std 0.1. Every process takes rank 0's result,
        the teacher a copy. The training random stream is left as it was."""
        was_training = self.network.training
        self.network.train()
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(torch.initial_seed() % 2**31)
            logits = data_dependent_init_classifier_(self.network.backbone, self.network.head, x)
        self.network.train(was_training)
        state = {name: value.cpu() for name, value in self.network.state_dict().items()}
        self.network.load_state_dict(self.trainer.strategy.broadcast(state, src=0))
        if self.ema is not None:
            self.ema.module.load_state_dict(self.network.state_dict())
        rank_zero_info(f"weight-norm data-dependent init on {len(x)} labeled images: logit std {float(logits.float().std(0).mean()):.3f}")

    # ---- training --------------------------------------------------------------
    def forward_streams(self, labeled: torch.Tensor, unlabeled: torch.Tensor, network=None):
        """(features, logits) of labeled then unlabeled images: one forward, or two (`separate_forwards`).
        With `network` (the teacher), logits only."""
        parts = [labeled, unlabeled] if self.separate_forwards else [torch.cat([labeled, unlabeled])]
        if network is not None:
            return torch.cat([network(part) for part in parts])
        outputs = [self.network.features_and_logits(part) for part in parts]
        return torch.cat([f for f, _ in outputs]), torch.cat([logit for _, logit in outputs])

    def training_step(self, batch, batch_idx):
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        (labeled_student, labeled_teacher), (unlabeled_student, unlabeled_teacher) = labeled["x"], unlabeled["x"]
        num_labeled = len(labeled["y"])
        student_features, student_logits = self.forward_streams(labeled_student, unlabeled_student)
        with torch.no_grad():
            teacher_logits = self.forward_streams(labeled_teacher, unlabeled_teacher, network=self.ema)

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
