"""Boosted SSL (paper 000): SSL epochs alternating with label-free clustering epochs and RotNet."""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..functional import (assign_batch_targets, boosted_phase, class_output_costs, clustering_loss, confident_pseudo_labels, cross_entropy,
                          masked_cross_entropy, nearby_permutations, oracle_accuracy_curve)
from ..functional.permutations import official_row_weights
from ..functional.phases import PHASES
from ..modules import ClusterTargetTable
from ..errors import ConfigError
from ..modules.distributed import all_gather_uneven, all_reduce_mean
from ..choices import check_choice, choices_of
from .fixmatch import FixMatch
from .meanteacher import MeanTeacher
from .optim import build_optimizer, build_scheduler, param_groups
from .ranges import AT_LEAST_ONE, BELOW_ONE, NON_NEGATIVE, POSITIVE, Interval, check_range, check_ranges
from .simmatch import SimMatch

RotationHead = Literal["mlp", "linear"]
ClusteringForward = Literal["kept", "all"]
PermutationCost = Literal["official", "mean"]
StrongAugment = Literal["ctaugment", "randaugment"]
WeakForward = Literal["separate", "joint"]
UnlabeledReduction = Literal["confident", "all"]
LabeledView = Literal["clustering", "weak"]
ROTATION_HEADS = choices_of(RotationHead)
CLUSTER_SHARE_RANGE = Interval(0, 1, low_open=True)


def build_rotation_head(feature_dim: int, kind: str = "mlp") -> nn.Module:
    """RotNet's 4-way head on the backbone features. "mlp" is the official `build_rotnet`:
    (Linear(d, d)-BatchNorm1d-ReLU) x 2 then Linear(d, 4), d = feature_dim (the last stage's
    channels); Linear weights Glorot-normal and biases zero (`initialize_weights`). "linear": one
    Linear(d, 4)."""
    if kind == "linear":
        layers = [nn.Linear(feature_dim, 4)]
    else:
        layers = [nn.Linear(feature_dim, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True),
                  nn.Linear(feature_dim, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, 4)]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return layers[0] if kind == "linear" else nn.Sequential(*layers)


class BoostedSSL:
    """Mixin that boosts an SSL method (put it first: `class BoostedFixMatch(BoostedSSL, FixMatch)`).

    Epochs follow `boosted_phase` (the official `train.py`): `warmup_epochs` of RotNet, then
    rounds of `ssl_epochs` epochs of the SSL method's own training step, one RotNet epoch
    (`rotnet`) and one clustering epoch. A clustering step (Sec. 3.2, Eq. 4-5):
      1. f = normalize(logits) of the un-augmented batch (eval mode, no gradient);
      2. the batch's stored targets move among its images by a Hungarian assignment on the
         unsquared distance |f - e_t| (so each cluster keeps its alpha N / K images);
      3. images left without a target but with |f - e_argmax| < rho get e_argmax for this step;
      4. MSE between normalize(logits) of `num_augmentations` augmented copies and the targets.
    A RotNet step is 4-way cross-entropy of a rotation head on the backbone features.

    As the official code: two SGD optimizers over the same weights (the SSL one, and the
    clustering one at lr 0.01, wd 1e-4, halved at `clustering_milestones` rounds); the SSL
    schedule steps once per SSL epoch; the EMA used for evaluation moves only in SSL steps.
    The trainer must rebuild the loaders every epoch (`reload_dataloaders_every_n_epochs: 1`):
    each phase has its own views and batch (`clustering_batch_size`).

    Official behaviours that are options here (defaults = the code):
    - `rotation_head`: "mlp" (`build_rotnet`, see `build_rotation_head`) or "linear";
    - `clustering_forward`: "kept" forwards only the kept images' augmentations in the gradient
      pass (`clustering_batch` stacks `new_augmented` of the kept images), so only they enter
      the BatchNorm batch; "all" forwards all r*B augmentations and masks the loss;
    - `ema_warmup`: the EMA decay is min(ema_decay, (t + 1) / (t + 10)) at its t-th update
      (`utils/ema.py::ModelEMA.update_params`); off: constant ema_decay;
    - `permutation_cost`: "official" sums the L1 costs with the code's row weights (0.1 for the
      first 4 rows of each class's rotation-major batch, 0.9 for the rest;
      `get_perm_cost_matrix`), "mean" averages them per class.

    `paper_variant: true` follows the paper's text instead of its code: squared distances in the
    assignment and in the rho test (f_max > 0.9 rather than 0.98 at rho 0.2) and Eq. 5 summed over
    the K outputs (the code's MSELoss also averages over them, a K times smaller step).

    Test also ranks output -> class maps with the labeled images under the RotNet view
    (`permutation_repeats` passes) by Murty's k best assignments, and logs and writes the best
    test accuracy among the first 1..`permutation_top_k` maps (the paper's Fig. 6). That is an
    oracle (it picks the map with the test labels), named as such: `test/oracle_top{k}_perm_acc`.

    Args:
        warmup_epochs: epochs of RotNet before the first round, >= 0 (code: 20).
        ssl_epochs: SSL epochs per round, >= 1 (code: 10).
        rotnet: one RotNet epoch per round (code: on; off for SVHN).
        alpha: alpha, the share of the images that get a cluster target (alpha N / K per cluster),
            in (0, 1] (paper: 1 on CIFAR-10, 0.6 on SVHN).
        rho: rho, the distance |f - e_argmax| below which an image without target gets its argmax
            for the step, >= 0 (code: 0.2).
        num_augmentations: r, augmented copies per image in a clustering step, >= 1 (code: 3).
        clustering_batch_size: B, images per clustering / RotNet step and process, >= 1 (code: 128).
        clustering_lr: lr of the clustering SGD, >= 0 (code: 0.01).
        clustering_momentum: momentum of the clustering SGD, in [0, 1) (code: 0.9).
        clustering_weight_decay: weight decay of the clustering SGD, >= 0 (code: 1e-4).
        clustering_milestones: rounds at which the clustering lr is multiplied by clustering_gamma
            (code: [100]; None is [100]).
        clustering_gamma: the clustering lr's factor at each milestone, > 0 (code: 0.5).
        target_seed: seed of the initial cluster-target table.
        permutation_top_k: k, output -> class maps ranked at test for the oracle curve, >= 0
            (paper Fig. 6: 10; 0 skips it).
        permutation_repeats: passes over the labeled images (random crops) for the ranking costs, >= 1 (code: 10).
        permutation_tolerance: how far from the best map the ranked maps may go, >= 0 (code: 4).
        paper_variant: the paper's text instead of its code (squared distances, Eq. 5 summed over outputs).
        rotation_head: RotNet's head, "mlp" (the official `build_rotnet`) or "linear".
        clustering_forward: "kept" forwards only the kept images' augmentations (code), "all"
            forwards all and masks the loss.
        ema_warmup: the EMA decay is min(ema_decay, (t + 1) / (t + 10)) (code: on).
        permutation_cost: "official" sums the costs with the code's row weights, "mean" averages them.
    """

    def __init__(
        self,
        warmup_epochs: int = 20,
        ssl_epochs: int = 10,
        rotnet: bool = True,
        alpha: float = 1.0,
        rho: float = 0.2,
        num_augmentations: int = 3,
        clustering_batch_size: int = 128,
        clustering_lr: float = 0.01,
        clustering_momentum: float = 0.9,
        clustering_weight_decay: float = 1e-4,
        clustering_milestones: list[int] | None = None,
        clustering_gamma: float = 0.5,
        target_seed: int = 0,
        permutation_top_k: int = 10,
        permutation_repeats: int = 10,
        permutation_tolerance: int = 4,
        paper_variant: bool = False,
        rotation_head: RotationHead = "mlp",
        clustering_forward: ClusteringForward = "kept",
        ema_warmup: bool = True,
        permutation_cost: PermutationCost = "official",
        **kwargs,
    ):
        check_ranges(AT_LEAST_ONE, num_augmentations=num_augmentations, ssl_epochs=ssl_epochs, clustering_batch_size=clustering_batch_size,
                     permutation_repeats=permutation_repeats)
        check_ranges(NON_NEGATIVE, warmup_epochs=warmup_epochs, rho=rho, clustering_lr=clustering_lr,
                     clustering_weight_decay=clustering_weight_decay, permutation_top_k=permutation_top_k,
                     permutation_tolerance=permutation_tolerance)
        check_range("alpha", alpha, CLUSTER_SHARE_RANGE, "the share of the images with a cluster target")
        check_range("clustering_momentum", clustering_momentum, BELOW_ONE)
        check_range("clustering_gamma", clustering_gamma, POSITIVE)
        check_choice("rotation_head", rotation_head, RotationHead)
        check_choice("clustering_forward", clustering_forward, ClusteringForward)
        check_choice("permutation_cost", permutation_cost, PermutationCost)
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.rotation_head = build_rotation_head(self.network.backbone.feature_dim, rotation_head)
        self.cluster_targets = ClusterTargetTable(self.num_classes, alpha, target_seed)
        self._unlabeled_indices: torch.Tensor | None = None
        self._test_predictions: list[tuple[torch.Tensor, torch.Tensor]] = []

    # ---- phases --------------------------------------------------------------------------
    def phase(self, epoch: int | None = None) -> tuple[str, int]:
        """(phase, round) of `epoch` (default: the current one)."""
        hp = self.hparams
        return boosted_phase(self.current_epoch if epoch is None else epoch, hp.warmup_epochs, hp.ssl_epochs, hp.rotnet)

    @property
    def views(self) -> dict[str, list]:
        phase = self.phase()[0]
        if phase == "ssl":
            return super().views
        if phase == "clustering":
            return {"labeled": [], "unlabeled": ["eval"] + ["clustering"] * self.hparams.num_augmentations}
        return {"labeled": [], "unlabeled": ["rotation"]}

    def phase_unlabeled_batch(self) -> int | None:
        return None if self.phase()[0] == "ssl" else self.hparams.clustering_batch_size

    def ssl_epochs_in_run(self) -> int:
        return sum(self.phase(e)[0] == "ssl" for e in range(int(self.trainer.max_epochs)))

    # ---- set-up ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit":
            return
        if self.trainer.reload_dataloaders_every_n_epochs != 1:
            raise ConfigError("Boosted SSL changes views and batch every phase: set trainer.reload_dataloaders_every_n_epochs: 1")
        if not self.trainer.max_epochs or self.trainer.max_epochs < 0:
            raise ConfigError("Boosted SSL's phases are epochs: set trainer.max_epochs (warm-up + rounds x round length)")
        indices = np.asarray(self.trainer.datamodule.unlabeled_indices)
        self._unlabeled_indices = torch.as_tensor(np.sort(indices))
        if len(self.cluster_targets) == 0:  # a resumed run loads its table after this
            self.cluster_targets.reset(len(indices))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "stream_views"):
            self.check_streams(datamodule)  # each phase reads its own streams; setup saw the first phase's

    def configure_optimizers(self):
        hp = self.hparams
        lrs = self.scaled_learning_rates(lr=hp.lr, clustering_lr=hp.clustering_lr)
        ssl = build_optimizer(param_groups(self.trainable_modules(), hp.weight_decay, hp.decay_norm_and_bias), hp.optimizer, lrs["lr"], hp.momentum, hp.nesterov)
        clustering = torch.optim.SGD(param_groups([self.network, self.rotation_head], hp.clustering_weight_decay), lr=lrs["clustering_lr"],
                                     momentum=hp.clustering_momentum)
        ssl_schedule = build_scheduler(ssl, hp.scheduler, max(1, self.ssl_epochs_in_run()), hp.warmup_steps, hp.final_lr_fraction, hp.decay_start)
        clustering_schedule = torch.optim.lr_scheduler.MultiStepLR(clustering, list(hp.clustering_milestones or [100]), hp.clustering_gamma)
        return [ssl, clustering], [ssl_schedule, clustering_schedule]

    def idle_modules(self):
        phase = self.phase()[0]
        if phase == "ssl":
            return [*super().idle_modules(), self.rotation_head]
        projector = [self.network.projector] if getattr(self.network, "projector", None) is not None else []
        return [self.rotation_head if phase == "clustering" else self.network.head, *projector]

    # ---- steps -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        phase, round_index = self.phase()
        ssl_optimizer, clustering_optimizer = self.optimizers()
        if phase == "ssl":
            loss = self.ssl_step(batch, batch_idx)
            self._step(ssl_optimizer, loss)
            self.after_optimizer_step()
            self.after_ssl_step(batch)
        elif phase == "clustering":
            loss = self.total_loss({"clustering": self.clustering_step(batch["unlabeled"])})
            self._step(clustering_optimizer, loss)
        else:
            loss = self.total_loss({"rotnet": self.rotation_loss(batch["unlabeled"]["x"])})
            self._step(clustering_optimizer, loss)
        self.log_dict({"train/phase": float(PHASES.index(phase)), "train/round": float(round_index)})
        return loss

    def ssl_step(self, batch, batch_idx) -> torch.Tensor:
        """The boosted method's own training step (its loss; the optimizer is stepped here)."""
        return super().training_step(batch, batch_idx)

    def after_ssl_step(self, batch) -> None:
        """State that follows an SSL optimizer step besides the EMA (BoostedFixMatch: CTAugment's rates)."""

    def ema_decay_at(self, num_updates: int) -> float:
        decay = super().ema_decay_at(num_updates)
        return min(decay, (num_updates + 1) / (num_updates + 10)) if self.hparams.ema_warmup else decay

    def _step(self, optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def clustering_step(self, unlabeled: dict) -> torch.Tensor:
        clean, *augmented = unlabeled["x"]
        positions = torch.searchsorted(self._unlabeled_indices.to(unlabeled["idx"].device), unlabeled["idx"])
        training = self.network.training
        self.network.eval()
        with torch.no_grad():
            logits = self.network(clean)
        self.network.train(training)
        paper = self.hparams.paper_variant
        step = assign_batch_targets(logits.float(), self.cluster_targets.lookup(positions), self.hparams.rho, squared=paper)
        self.cluster_targets.update(positions, step.stored)
        self.log("train/clustering_kept", step.kept.float().mean(), batch_size=len(clean))
        if self.hparams.clustering_forward == "all":
            loss = clustering_loss(self.network(torch.cat(augmented)).float(), step.targets, step.kept)
        elif bool(step.kept.any()):
            kept = step.kept.to(clean.device)
            loss = clustering_loss(self.network(torch.cat([a[kept] for a in augmented])).float(), step.targets[step.kept])
        else:  # nothing kept (the code would crash): a zero that reaches every weight, no BN update
            loss = sum(p.sum() for p in self.network.parameters()) * 0.0
        return loss * self.num_classes if paper else loss

    def rotation_loss(self, rotated: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the rotation head; `rotated` is [B, 4, C, H, W] (k x 90 degrees at k)."""
        labels = torch.arange(4, device=rotated.device).repeat(len(rotated))
        return cross_entropy(self.rotation_head(self.network.backbone(rotated.flatten(0, 1))), labels)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if not self.epoch_ran_to_its_end():
            return
        ssl_schedule, clustering_schedule = self.lr_schedulers()
        phase = self.phase()[0]
        if phase == "ssl":
            ssl_schedule.step()
        elif phase == "clustering":
            clustering_schedule.step()

    # ---- top-k permutations (evaluation) -------------------------------------------------------------
    def test_step(self, batch, batch_idx):
        logits = self._evaluate(batch, self.test_metrics, "test/")
        self._test_predictions.append((logits.argmax(dim=1), batch["y"]))

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        k = self.hparams.permutation_top_k
        if not k or not self._test_predictions:
            return
        preds, targets = (all_gather_uneven(torch.cat(parts)) for parts in zip(*self._test_predictions))
        self._test_predictions.clear()
        maps = nearby_permutations(self.labeled_output_costs(), k, self.hparams.permutation_tolerance)
        curve = oracle_accuracy_curve(preds, targets, maps)
        self.log(f"test/oracle_top{k}_perm_acc", curve[-1])
        self.write_run_file("top_k_permutations.json", {"oracle_accuracy_by_k": curve, "maps": [m.tolist() for m in maps]})

    @torch.no_grad()
    def labeled_output_costs(self) -> torch.Tensor:
        """Class x output cost from the labeled images in their 4 rotations (random crops),
        `permutation_repeats` passes, summed over processes."""
        logits, labels, indices, rotations = [], [], [], []
        for _ in range(self.hparams.permutation_repeats):
            for batch in self.trainer.datamodule.labeled_dataloader("rotation"):
                rotated = batch["x"].to(self.device)
                logits.append(self.eval_logits(rotated.flatten(0, 1)).float())
                labels.append(batch["y"].to(self.device).repeat_interleave(rotated.shape[1]))
                indices.append(batch["idx"].to(self.device).repeat_interleave(rotated.shape[1]))
                rotations.append(torch.arange(rotated.shape[1], device=self.device).repeat(len(rotated)))
        logits, labels, indices, rotations = (all_gather_uneven(torch.cat(part)) for part in (logits, labels, indices, rotations))
        weights = official_row_weights(indices, labels, rotations) if self.hparams.permutation_cost == "official" else None
        return class_output_costs(logits, labels, self.num_classes, weights)


class BoostedFixMatch(BoostedSSL, FixMatch):
    """FixMatch boosted by clustering epochs and RotNet (the paper's main method).

    Its FixMatch epochs follow the code behind the paper's numbers (`CTAFixMatch.ss_batch`,
    spec §2.4), each an option (defaults = that code):
    - `strong_augment`: "ctaugment" (FixMatch's CTA policy, `datamodules/views/ctaugment.py`;
      every step the labeled probes, scored by the raw network in eval mode as in
      `update_cta_rates`, update the rates) or "randaugment" (our `strong` view);
    - `weak_forward`: "separate" runs the weak batch alone under no_grad in train mode (its BN
      statistics update), then labeled + strong in one pass; "joint" is FixMatch's one pass over
      [labeled; weak; strong];
    - `unlabeled_reduction`: "confident" averages L_u over the confident images (and with
      "separate", only those strong images are forwarded, as the code); "all" divides by muB
      (official FixMatch);
    - `labeled_view`: "clustering" gives the labeled images the clustering phase's ColorJitter
      + flip + crop (`LabeledTransform.train_transform`); "weak" is FixMatch's flip + crop.

    Args:
        strong_augment: the strong view, "ctaugment" (the code's CTA, rates learnt from labeled
            probes) or "randaugment".
        weak_forward: "separate" (the code: weak batch alone under no_grad, then labeled + strong)
            or "joint" (FixMatch's one pass).
        unlabeled_reduction: L_u averaged over the "confident" images (the code) or over "all" muB.
        labeled_view: the labeled images' view, "clustering" (the code's ColorJitter + flip + crop) or "weak".
    """

    def __init__(self, strong_augment: StrongAugment = "ctaugment", weak_forward: WeakForward = "separate",
                 unlabeled_reduction: UnlabeledReduction = "confident", labeled_view: LabeledView = "clustering", **kwargs):
        check_choice("strong_augment", strong_augment, StrongAugment)
        check_choice("weak_forward", weak_forward, WeakForward)
        check_choice("unlabeled_reduction", unlabeled_reduction, UnlabeledReduction)
        check_choice("labeled_view", labeled_view, LabeledView)
        super().__init__(**kwargs)
        self.cta = None
        if strong_augment == "ctaugment":
            from datamodules.views.ctaugment import CTAugmentRates

            self.cta = CTAugmentRates()

    @property
    def views(self) -> dict[str, list]:
        if self.phase()[0] != "ssl":
            return super().views
        strong = "ctaugment" if self.cta is not None else "strong"
        labeled = [self.hparams.labeled_view] + (["cta_probe"] if self.cta is not None else [])
        return {"labeled": labeled, "unlabeled": ["weak", strong]}

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.cta is not None:  # a fresh or resumed run: the loaders' workers read these rates
            self.cta.publish()

    def ssl_step(self, batch, batch_idx) -> torch.Tensor:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        x = labeled["x"][0] if self.cta is not None else labeled["x"]
        weak, strong = unlabeled["x"]
        confident_only = self.hparams.unlabeled_reduction == "confident"
        if self.hparams.weak_forward == "separate":
            with torch.no_grad():
                pseudo_labels, mask, _ = confident_pseudo_labels(self.network(weak), self.threshold)
            strong_in = strong[mask] if confident_only else strong
            logits = self.network(torch.cat([x, strong_in]))
            logits_labeled, logits_strong = logits[: len(x)], logits[len(x):]
            targets = pseudo_labels[mask] if confident_only else pseudo_labels
        else:
            logits_labeled, logits_weak, logits_strong = self.network(torch.cat([x, weak, strong])).split([len(x), len(weak), len(strong)])
            pseudo_labels, mask, _ = confident_pseudo_labels(logits_weak, self.threshold)
            logits_strong, targets = (logits_strong[mask], pseudo_labels[mask]) if confident_only else (logits_strong, pseudo_labels)
        self.log_pseudo_labels(pseudo_labels, mask, unlabeled["y_hidden"])
        if confident_only:
            # The mean over the confident images of every process: this process's sum over the
            # per-process average count, so DDP's gradient average gives the global mean.
            confident = all_reduce_mean(mask.sum().float())
            unsup = F.cross_entropy(logits_strong.float(), targets, reduction="sum") / confident.clamp_min(1.0)
        else:
            unsup = masked_cross_entropy(logits_strong, targets, mask)
        return self.total_loss({"sup": cross_entropy(logits_labeled, labeled["y"]), "unsup": self.lambda_u * unsup}, len(x))

    @torch.no_grad()
    def after_ssl_step(self, batch) -> None:
        """CTAugment's rate update from this step's probes, after the optimizer step (`update_cta_rates`)."""
        if self.cta is None:
            return
        from datamodules.views.ctaugment import probe_proximity

        probe, policies = batch["labeled"]["x"][1]
        training = self.network.training
        self.network.eval()
        probs = self.network(probe).float().softmax(dim=1)
        self.network.train(training)
        proximity = probe_proximity(probs, batch["labeled"]["y"])
        self.cta.update(all_gather_uneven(policies.to(self.device)), all_gather_uneven(proximity))


class BoostedMeanTeacher(BoostedSSL, MeanTeacher):
    """Mean Teacher boosted by clustering epochs and RotNet."""


class BoostedSimMatch(BoostedSSL, SimMatch):
    """SimMatch boosted by clustering epochs and RotNet."""
