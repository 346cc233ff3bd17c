from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info

from ..errors import ConfigError
from ..functional import confidence_based_cross_entropy
from ..modules import ClusterNetwork
from ..modules.distributed import any_process
from .clustering_eval import ClusterMethod
from .init_from import load_state_dict_file
from .ranges import BELOW_ONE, check_range


class SCANSelfLabel(ClusterMethod):
    """SCAN step 4, self-labeling (Sec. 2.3): fine-tune the SCAN model on its own confident
    predictions. Per step, with the model in train mode:
      1. targets = argmax of the weak (eval) view's prediction, without gradient; mask = max prob > 0.99;
      2. L = cross-entropy of the strong view on the masked samples, class c weighted n / count_c.
    A step where no process has a confident sample is a logged no-op: every process runs its zero
    loss backward, and the gradients are dropped before the optimizer step, which then moves no
    weight (no weight decay, no momentum); the step still counts (global step, lr schedule, EMA),
    so a resumed run continues the same way (the official code raises).

    `init_from` a SCAN checkpoint takes its backbone and its selected (lowest-loss) head; a
    pretext checkpoint gives the backbone only. `ema_decay` keeps an EMA of the weights for
    evaluation. `ema_replaces_weights` is the official ImageNet setting (utils/train_utils.py
    selflabel_train: ema.update_params then ema.apply_shadow after every optimizer step):
    Polyak smoothing, not a teacher. The EMA averages the parameters only, then the whole
    EMA state is loaded into the trained network, so theta <- theta + (1 - decay) * step, and
    the BatchNorm statistics go back to their values at the start (the EMA keeps its own:
    `ema_buffers: own`) after every step. Defaults: Adam 1e-4 with L2 1e-4, constant lr.

    Args:
        threshold: the confidence max p above which a prediction becomes a target, in [0, 1) (paper: 0.99).
        balance_classes: weigh class c's cross-entropy by n / count_c among the confident samples (code: on).
        ema_replaces_weights: load the EMA into the trained network after every step (code, ImageNet);
            needs ema_decay and ema_buffers: own.
    """

    views = {"labeled": [], "unlabeled": ["eval", "scan_strong"]}

    def __init__(self, threshold: float = 0.99, balance_classes: bool = True, ema_replaces_weights: bool = False, **kwargs):
        check_range("threshold", threshold, BELOW_ONE, "a softmax confidence: 1 or more keeps no target")
        super().__init__(**kwargs)
        if ema_replaces_weights and (self.ema is None or self.hparams.ema_buffers != "own"):
            raise ConfigError("ema_replaces_weights needs ema_decay and ema_buffers: own (the official ImageNet setting: ema_decay 0.999)")
        self.threshold, self.balance_classes = threshold, balance_classes
        self._nothing_confident = False

    def build_network(self, backbone, num_classes):
        return ClusterNetwork(backbone, self.num_clusters, num_heads=1)

    def initialise_from(self, path: str) -> None:
        super().initialise_from(path)
        source = load_state_dict_file(path)
        if "best_head" not in source:
            return  # a pretext checkpoint: the backbone only
        best = int(source["best_head"])
        head = {name: source[f"network.heads.heads.{best}.{name}"] for name in ("weight", "bias")}
        if head["weight"].shape != self.network.heads.heads[0].weight.shape:
            raise ConfigError(f"{path}'s head {best} has shape {tuple(head['weight'].shape)}; set num_clusters to match it")
        self.network.heads.heads[0].load_state_dict(head)
        rank_zero_info(f"SCANSelfLabel: head {best} (the lowest-loss SCAN head) taken from {path}")

    def training_step(self, batch, batch_idx):
        weak, strong = batch["unlabeled"]["x"]
        with torch.no_grad():
            weak_logits = self.network(weak)[0]
        strong_logits = self.network(strong)[0]
        loss, _, mask = confidence_based_cross_entropy(weak_logits, strong_logits, self.threshold, self.balance_classes)
        self.log("train/mask_rate", mask.float().mean(), prog_bar=True, batch_size=len(mask))
        self._nothing_confident = not any_process(bool(mask.any()), mask.device)
        self.log("train/empty_confident_set", float(self._nothing_confident), batch_size=len(mask))
        return self.total_loss({"self_label": loss}, len(mask))

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()  # the EMA update (parameters only)
        if self.hparams.ema_replaces_weights:
            self.network.load_state_dict(self.ema.module.state_dict())  # ema.apply_shadow(model)

    def idle_modules(self):
        # A zero loss that still reaches every weight (DDP needs every process to run the same backward);
        # the gradients are then dropped, so the optimizer step moves nothing.
        return [self.network] if self._nothing_confident else []

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_network(x)[0]
