"""What every method shares: network, optimizer/schedule, EMA, evaluation, logging, safety checks."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchmetrics import MeanMetric

from ..callbacks import run_directory
from ..checkpointing.cut_epoch import reopen_cut_epoch
from ..functional import cosine_between, cross_entropy
from ..modules import EMA, Classifier, classification_metrics, update_classification_metrics
from ..nets import build_backbone
from .idle import IdleParameters
from .init_from import init_from_checkpoint
from .optim import build_optimizer, build_scheduler, check_lr_scaling, global_batch_size, param_groups, scaled_lr

EMA_SCHEDULES = ("constant", "cosine")


class NonFiniteLossError(FloatingPointError):
    pass


class SSLMethod(L.LightningModule):
    """Base of all methods.

    Subclasses set `views` (what the datamodule produces per stream) and write
    `training_step` in the paper's terms, returning `self.total_loss({...})`.

    Args:
        num_classes: classes of the classifier head (checked against the data).
        backbone: a name understood by `sslzoo.nets.build_backbone` ("wrn_28_2", "timm:resnet50", ...).
        backbone_options: keyword arguments for the backbone.
        head: classifier head, "linear" (FixMatch) or "weight_norm" (Mean Teacher's CNN-13 setup).
        optimizer: "sgd" (Nesterov by default), "lars" or "adamw".
        lr, momentum, nesterov, weight_decay: optimizer settings.
        weight_decay_end: if set, the weight decay follows a cosine from weight_decay to this
            value over training, per optimizer step (DINO: 0.04 -> 0.4).
        decay_norm_and_bias: also decay BN parameters and biases (off: FixMatch decays kernels only).
        lars_options: timm Lars options over `optim.LARS_DEFAULTS` (trust_coeff, trust_clip, always_adapt).
        scheduler: "fixmatch_cosine" (cos(7 pi k / 16 K)), "warmup_cosine", "linear_decay" or "constant",
            stepped per optimizer step over `trainer.estimated_stepping_batches`.
        warmup_steps, final_lr_fraction: for "warmup_cosine".
        decay_start: for "linear_decay", the fraction of training after which lr falls linearly to 0.
        ema_decay: keep an EMA of the network and evaluate with it; None disables.
        ema_buffers: how the EMA treats BN statistics ("average", "copy", "own").
        ema_schedule: "constant" decay, or "cosine" from ema_decay up to 1 over training
            (BYOL/DINO's teacher momentum), per optimizer step.
        init_from: initialise `init_parts` of the network from this sslzoo checkpoint or
            state-dict file before training (e.g. a SwAV pretraining run).
        init_parts: sub-modules to initialise ("backbone"; add "head.hidden" and
            "head.projection" to also take a SwAV projector).
        lr_scaling: "none" (lr as given), "linear" or "sqrt": every lr is multiplied by
            (global batch / lr_reference_batch) or its square root, where the global batch is
            the datamodule's per-process batch x processes x accumulate_grad_batches. The base
            lr, global batch, rule and effective lr are logged as hyper-parameters either way.
        lr_reference_batch: the global batch the given lr was tuned for (needed to scale).
        compile: compile the backbone (and its EMA copy) in place with `nn.Module.compile`;
            parameter names do not change, so checkpoints load with or without it.
        compile_options: keyword arguments of `torch.compile` when `compile` is on, e.g.
            {"mode": "max-autotune"} or {"backend": "eager"}.
    """

    views: dict[str, list] = {"labeled": ["weak"], "unlabeled": []}
    checkpoint_metric: str | None = "val/acc"  # what `--checkpoint.monitor auto` selects the best checkpoint by

    def __init__(
        self,
        num_classes: int = 10,
        backbone: str = "wrn_28_2",
        backbone_options: dict | None = None,
        head: str = "linear",
        optimizer: str = "sgd",
        lr: float = 0.03,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        weight_decay_end: float | None = None,
        decay_norm_and_bias: bool = False,
        lars_options: dict | None = None,
        scheduler: str = "fixmatch_cosine",
        warmup_steps: int = 0,
        final_lr_fraction: float = 0.0,
        decay_start: float = 0.0,
        ema_decay: float | None = None,
        ema_buffers: str = "average",
        ema_schedule: str = "constant",
        init_from: str | None = None,
        init_parts: list[str] | None = None,
        lr_scaling: str = "none",
        lr_reference_batch: int | None = None,
        compile: bool = False,
        compile_options: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.network = self.build_network(build_backbone(backbone, **(backbone_options or {})), num_classes)
        self.ema = EMA(self.network, ema_decay, ema_buffers) if ema_decay is not None else None
        if compile_options and not compile:
            rank_zero_warn("compile_options are ignored because compile is off; set compile: true to use them")
        if compile:
            self.compile_backbones(compile_options or {})
        if ema_schedule not in EMA_SCHEDULES:
            raise ValueError(f"ema_schedule must be one of {EMA_SCHEDULES}, got {ema_schedule!r}")
        check_lr_scaling(lr_scaling, lr_reference_batch)
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")
        # Sample-weighted means synced by their sums: with unequal eval shards, a mean of
        # per-process means would weigh the samples of the smaller shard more.
        self.eval_losses = torch.nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        self._idle_parameters = IdleParameters()

    # ---- networks ----------------------------------------------------------
    def build_network(self, backbone: torch.nn.Module, num_classes: int) -> torch.nn.Module:
        """The trained network (its EMA is built from it); methods with extra heads override."""
        return Classifier(backbone, num_classes, head=self.hparams.head)

    def compile_backbones(self, options: dict) -> None:
        """Compile the network's backbone, and the EMA copy's (a teacher runs it every step),
        in place: the wrapped forward is compiled, the module and its state-dict keys stay."""
        for network in [self.network] + ([self.ema.module] if self.ema is not None else []):
            if not isinstance(getattr(network, "backbone", None), torch.nn.Module):
                raise ValueError(f"compile needs a network with a `backbone`; {type(network).__name__} has none")
            network.backbone.compile(**options)

    @property
    def eval_network(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.network

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits used by validation, test and prediction."""
        return self.eval_network(x)

    def eval_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of the evaluated network (the validation pictures' embedding).
        Methods whose evaluated network has no `.backbone` override this."""
        backbone = getattr(self.eval_network, "backbone", None)
        if backbone is None:
            raise NotImplementedError(f"{type(self).__name__}'s evaluated network has no .backbone; override eval_features(x)")
        return backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_logits(x)

    def ema_decay_at(self, num_updates: int) -> float:
        """The EMA decay for the update after `num_updates` earlier ones."""
        if self.hparams.ema_schedule == "cosine":
            return cosine_between(num_updates, int(self.trainer.estimated_stepping_batches), self.ema.decay, 1.0)
        return self.ema.decay

    # ---- set-up checks -----------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(datamodule, "num_classes", None) if datamodule is not None else None
        if data_classes is not None and data_classes != self.num_classes:
            raise ValueError(
                f"model.num_classes={self.num_classes} but the data has {data_classes} classes; "
                f"set --model.init_args.num_classes {data_classes}"
            )
        if stage == "fit" and self.hparams.init_from:
            # A resumed run restores its checkpoint after this, so this only matters for a fresh start.
            self.initialise_from(self.hparams.init_from)
            if self.ema is not None:
                self.ema.module.load_state_dict(self.network.state_dict())

    def initialise_from(self, path: str) -> None:
        """Copy `init_parts` of the network from a checkpoint (methods with more to take override)."""
        init_from_checkpoint(self.network, path, tuple(self.hparams.init_parts or ["backbone"]))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sslzoo"] = self._identity()
        if self._trainer is not None and self.trainer.state.fn == "fit":
            checkpoint["sslzoo_schedule"] = {"total_steps": int(self.trainer.estimated_stepping_batches)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("sslzoo")
        if saved is None:
            raise ValueError("this checkpoint was not written by sslzoo (no 'sslzoo' entry); load its weights by hand")
        mine = self._identity()
        if saved != mine:
            diff = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs this run {mine.get(k)!r}" for k in mine if saved.get(k) != mine.get(k))
            raise ValueError(f"checkpoint does not fit this model ({diff}); resume with the same method, backbone and classes")
        fit_loop = checkpoint.get("loops", {}).get("fit_loop")
        if fit_loop is not None:
            reopen_cut_epoch(fit_loop)  # the loops are restored from this same dict after this hook
        self._resumed_total_steps = (checkpoint.get("sslzoo_schedule") or {}).get("total_steps")

    def on_train_start(self) -> None:
        total, before = int(self.trainer.estimated_stepping_batches), getattr(self, "_resumed_total_steps", None)
        if before is not None and before != total:
            rank_zero_warn(
                f"sslzoo: this run was trained for {before} steps and now runs for {total} (max_steps/max_epochs changed): "
                f"schedules over the whole run (lr, EMA and weight-decay cosines) are stretched to {total} steps from step "
                f"{self.global_step} on, so they jump there. Keep the old length for an exact continuation"
            )

    def epoch_ran_to_its_end(self) -> bool:
        """False in the on_train_epoch_end that Lightning runs when fit stops inside an epoch
        (max_steps, a signal): that epoch continues on resume, so per-epoch updates wait for its end."""
        return bool(self.trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)

    def _identity(self) -> dict:
        return {"method": type(self).__name__, "backbone": self.hparams.backbone, "num_classes": self.num_classes, "ema": self.ema is not None}

    # ---- optimisation ------------------------------------------------------
    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.network]

    def configure_optimizers(self):
        hp = self.hparams
        groups = param_groups(self.trainable_modules(), hp.weight_decay, hp.decay_norm_and_bias)
        optimizer = build_optimizer(groups, hp.optimizer, self.scaled_learning_rates(lr=hp.lr)["lr"], hp.momentum, hp.nesterov, hp.lars_options)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, hp.scheduler, total, hp.warmup_steps, hp.final_lr_fraction, hp.decay_start)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def scaled_learning_rates(self, **base_lrs: float) -> dict[str, float]:
        """`base_lrs` scaled by `lr_scaling` for this run's global batch; the choice, the batch and
        every base and effective lr go to every logger as hyper-parameters and are printed once."""
        rule, reference = self.hparams.lr_scaling, self.hparams.lr_reference_batch
        batch = global_batch_size(self.trainer)
        effective = {name: scaled_lr(lr, rule, batch, reference) for name, lr in base_lrs.items()}
        report = {"lr_scaling": rule, "lr_reference_batch": reference, "global_batch": batch}
        for name in base_lrs:
            report.update({f"base_{name}": base_lrs[name], f"effective_{name}": effective[name]})
        for logger in self.loggers:
            logger.log_hyperparams(report)
        rank_zero_info("learning rate: " + ", ".join(f"{key}={value}" for key, value in report.items()))
        return effective

    def idle_modules(self) -> list[torch.nn.Module]:
        """Modules whose parameters this step's loss does not use (a phase's unused head), the same
        on every process. They join the loss at weight 0 and lose that zero gradient before the
        optimizer step (`IdleParameters`): DDP reduces every gradient, the update is one process's."""
        return []

    def on_before_optimizer_step(self, optimizer) -> None:
        self._idle_parameters.drop_gradients()
        self.log("train/lr", optimizer.param_groups[0]["lr"])
        end = self.hparams.weight_decay_end
        if end is not None:
            decay = cosine_between(self.global_step, int(self.trainer.estimated_stepping_batches), self.hparams.weight_decay, end)
            for group in optimizer.param_groups:
                if group["weight_decay"] > 0:
                    group["weight_decay"] = decay
            self.log("train/weight_decay", decay)

    def optimizer_step(self, *args, **kwargs) -> None:
        # Lightning calls this once per real optimizer step (not per accumulated
        # micro-batch), and before any callback can checkpoint the step.
        super().optimizer_step(*args, **kwargs)
        self.after_optimizer_step()

    def after_optimizer_step(self) -> None:
        """State that follows a real optimizer step (EMA here; queues, banks and centres in
        subclasses). Methods that step optimizers by hand (Boosted SSL) call it themselves."""
        if self.ema is not None:
            self.ema.update(self.network, self.ema_decay_at(int(self.ema.num_updates)))

    # ---- losses and logging ------------------------------------------------
    def total_loss(self, terms: dict[str, torch.Tensor], batch_size: int | None = None) -> torch.Tensor:
        """Sum the (already weighted) loss terms, refuse non-finite ones, log each."""
        total = sum(terms.values())
        if not torch.isfinite(total):
            bad = [name for name, value in terms.items() if not torch.isfinite(value)]
            raise NonFiniteLossError(
                f"non-finite loss at step {self.global_step} (epoch {self.current_epoch}): term(s) {', '.join(bad)} "
                f"= {', '.join(str(float(terms[b].detach())) for b in bad)}. Lower the learning rate, check the inputs, "
                "or disable mixed precision to find the cause."
            )
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value.detach(), batch_size=batch_size)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=batch_size)
        idle = self._idle_parameters.use(self.idle_modules())
        return total if idle is None else total + idle

    def log_pseudo_labels(self, pseudo_labels: torch.Tensor, mask: torch.Tensor, hidden_labels: torch.Tensor) -> None:
        """Mask rate and pseudo-label accuracy against the hidden true labels (-1 = unknown)."""
        known = hidden_labels >= 0
        mask = mask.float()
        correct = (pseudo_labels == hidden_labels).float() * known
        self.log("train/mask_rate", mask.mean(), prog_bar=True, batch_size=len(mask))
        self.log("train/pseudo_acc_all", correct.sum() / known.sum().clamp_min(1), batch_size=len(mask))
        self.log("train/pseudo_acc_masked", (correct * mask).sum() / (mask * known).sum().clamp_min(1), prog_bar=True, batch_size=len(mask))

    # ---- evaluation --------------------------------------------------------
    def _evaluate(self, batch: dict, metrics, prefix: str) -> torch.Tensor:
        logits = self.eval_logits(batch["x"])
        loss = cross_entropy(logits, batch["y"])
        update_classification_metrics(metrics, logits, batch["y"])
        mean_loss = self.eval_losses[prefix.strip("/")]
        mean_loss.update(loss.detach(), weight=len(batch["y"]))
        self.log(f"{prefix}loss", mean_loss, on_step=False, on_epoch=True)
        return logits

    def _reset_eval_state(self, stage: str) -> None:
        # Fresh state tensors each evaluation: under ddp_spawn on CPU the pickled module's tensors
        # are shared memory between the processes, so in-place metric updates would add up across ranks.
        getattr(self, f"{stage}_metrics").reset()
        self.eval_losses[stage].reset()

    def on_validation_epoch_start(self) -> None:
        self._reset_eval_state("val")

    def on_test_epoch_start(self) -> None:
        self._reset_eval_state("test")

    def validation_step(self, batch, batch_idx):
        # The logits reach callbacks' on_validation_batch_end (the confusion picture).
        return self._evaluate(batch, self.val_metrics, "val/")

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log("val/acc", values.pop("val/acc"), prog_bar=True)
        self.log_dict(values)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, self.test_metrics, "test/")

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def write_run_file(self, name: str, payload: dict) -> Path | None:
        """Write `payload` as JSON into the run's log directory (rank 0, only when the run has a logger)."""
        if self.trainer.logger is None:
            return None
        directory = run_directory(self.trainer)
        if not self.trainer.is_global_zero:
            return None
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload) + "\n")
        rank_zero_info(f"wrote {path}")
        return path

    def predict_step(self, batch, batch_idx):
        return {"logits": self.eval_logits(batch["x"]), "idx": batch["idx"]}
