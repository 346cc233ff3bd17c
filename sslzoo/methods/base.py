"""What every method shares: network, optimizer/schedule, EMA, evaluation, logging, safety checks."""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchmetrics import MeanMetric

from ..callbacks import run_directory
from ..checkpointing.cut_epoch import reopen_cut_epoch
from ..checkpointing.network_shape import network_mismatch
from ..errors import ConfigError, ResumeRefused
from ..functional import cosine_between, cross_entropy
from ..modules import EMA, Classifier, classification_metrics, update_classification_metrics
from ..modules.classifier import HEADS
from ..modules.ema import BUFFER_MODES
from ..nets import build_backbone
from ..nets.options import check_options
from ..choices import check_choice, choices_of
from .idle import IdleParameters
from .init_from import init_from_checkpoint
from .optim import (LRScaling, OptimizerName, SchedulerName, build_optimizer, build_scheduler, check_lars_options, check_lr_scaling,
                    global_batch_size, param_groups, scaled_lr)
from .ranges import AT_LEAST_ONE, BELOW_ONE, NON_NEGATIVE, UNIT, check_range, check_ranges

HeadKind = Literal[HEADS]
EMABuffers = Literal[BUFFER_MODES]
EMASchedule = Literal["constant", "cosine"]
EMA_SCHEDULES = choices_of(EMASchedule)
# Keyword options (backbone_options, compile_options, lars_options): values parse as YAML scalars,
# so `--model.backbone_options.widen_factor 2` is the number 2, not the string "2".
Options = dict[str, int | float | bool | str | list | dict | None]
RGB = 3


class NonFiniteLossError(FloatingPointError):
    pass


def required_num_classes(num_classes: int | None) -> int:
    """`num_classes`, which a Python caller must give (the sslzoo command fills it from the data)."""
    if num_classes is None:
        raise ConfigError("num_classes is not set: pass num_classes=datamodule.num_classes (the sslzoo command reads it from --data)")
    return check_range("num_classes", num_classes, AT_LEAST_ONE)


def backbone_channels(input_channels: int | None, backbone_options: dict) -> int:
    """The backbone's input channels: `input_channels` (the data's), else backbone_options' own,
    else 3; the two must agree when both are given."""
    given = backbone_options.get("input_channels")
    if input_channels is not None and given is not None and given != input_channels:
        raise ConfigError(
            f"backbone_options input_channels={given} contradicts input_channels={input_channels} (the data's channels); "
            "remove input_channels from backbone_options"
        )
    return next((value for value in (input_channels, given) if value is not None), RGB)


def check_compile_options(compile_options: dict | None) -> None:
    accepted = [name for name in inspect.signature(torch.compile).parameters if name != "model"]
    check_options("compile_options", compile_options or {}, accepted, "torch.compile")


class SSLMethod(L.LightningModule):
    """Base of all methods.

    Subclasses set `views` (what the datamodule produces per stream) and write
    `training_step` in the paper's terms, returning `self.total_loss({...})`.

    Args:
        num_classes: C, classes of the classifier head; None (default) follows the data: the
            sslzoo command fills it from the datamodule, a Python caller passes datamodule.num_classes.
        input_channels: channels of the input images (1 grey, 3 RGB); None follows the data
            (the sslzoo command fills it; a Python caller gets 3, or backbone_options' input_channels).
        image_size: side of the input images in pixels, for backbones whose constructor needs it
            (timm models that take `img_size`, e.g. ViTs); None follows the data; other backbones ignore it.
        backbone: the network f, a name understood by `sslzoo.nets.build_backbone` ("wrn_28_2",
            "cnn13", "resnet50", "timm:vit_small_patch16_224", ...).
        backbone_options: keyword arguments of the backbone's constructor (e.g. {depth: 10,
            widen_factor: 2}); a key it does not take is an error that lists the valid ones.
        head: classifier head, "linear" (FixMatch) or "weight_norm" (Mean Teacher's CNN-13 setup).
        optimizer: "sgd" (Nesterov by default), "lars", "adam" (L2 decay in the gradient, SCAN) or
            "adamw" (decoupled decay).
        lr: eta, the base learning rate before `lr_scaling` and the schedule (FixMatch: 0.03).
        momentum: beta, SGD/LARS momentum in [0, 1) (FixMatch: 0.9).
        nesterov: Nesterov momentum for SGD (FixMatch: true).
        weight_decay: the L2 / weight-decay coefficient, >= 0 (FixMatch: 5e-4 on CIFAR-10, 1e-3 on CIFAR-100).
        weight_decay_end: if set, the weight decay follows a cosine from weight_decay to this
            value over training, per optimizer step (DINO: 0.04 -> 0.4).
        decay_norm_and_bias: also decay BN parameters and biases (off: FixMatch decays kernels only).
        lars_options: timm Lars options over `optim.LARS_DEFAULTS` (trust_coeff, trust_clip, always_adapt).
        scheduler: "fixmatch_cosine" (cos(7 pi k / 16 K)), "warmup_cosine", "linear_decay" or "constant",
            stepped per optimizer step over `trainer.estimated_stepping_batches`.
        warmup_steps: for "warmup_cosine", optimizer steps of linear warm-up from 0 to lr.
        final_lr_fraction: for "warmup_cosine", the lr at the end as a fraction of lr, in [0, 1].
        decay_start: for "linear_decay", the fraction of training after which lr falls linearly to 0.
        ema_decay: keep an EMA of the network and evaluate with it, with this decay in [0, 1)
            (FixMatch: 0.999); None disables.
        ema_buffers: how the EMA treats BN statistics: "average" them, "copy" the student's, or
            keep its "own" (see `sslzoo.modules.EMA`).
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
        channels_last: keep conv weights (and so activations) in channels-last memory layout, the
            fast layout of cuDNN and oneDNN convolutions (WRN-28-2 forward+backward on 2 CPU cores:
            1.15x at 80 images, 1.9x at 480);
            the same math, float rounding aside. Off: PyTorch's default contiguous layout.
    """

    views: dict[str, list] = {"labeled": ["weak"], "unlabeled": []}
    checkpoint_metric: str | None = "val/acc"  # what `--checkpoint.monitor auto` selects the best checkpoint by

    def __init__(
        self,
        num_classes: int | None = None,
        input_channels: int | None = None,
        image_size: int | None = None,
        backbone: str = "wrn_28_2",
        backbone_options: Options | None = None,
        head: HeadKind = "linear",
        optimizer: OptimizerName = "sgd",
        lr: float = 0.03,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        weight_decay_end: float | None = None,
        decay_norm_and_bias: bool = False,
        lars_options: Options | None = None,
        scheduler: SchedulerName = "fixmatch_cosine",
        warmup_steps: int = 0,
        final_lr_fraction: float = 0.0,
        decay_start: float = 0.0,
        ema_decay: float | None = None,
        ema_buffers: EMABuffers = "average",
        ema_schedule: EMASchedule = "constant",
        init_from: str | None = None,
        init_parts: list[str] | None = None,
        lr_scaling: LRScaling = "none",
        lr_reference_batch: int | None = None,
        compile: bool = False,
        compile_options: Options | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = required_num_classes(num_classes)
        check_choice("head", head, HeadKind)
        check_choice("optimizer", optimizer, OptimizerName)
        check_choice("scheduler", scheduler, SchedulerName)
        check_choice("ema_buffers", ema_buffers, EMABuffers)
        check_choice("ema_schedule", ema_schedule, EMASchedule)
        check_ranges(NON_NEGATIVE, lr=lr, weight_decay=weight_decay, weight_decay_end=weight_decay_end, warmup_steps=warmup_steps)
        check_ranges(BELOW_ONE, momentum=momentum, ema_decay=ema_decay)
        check_ranges(UNIT, final_lr_fraction=final_lr_fraction, decay_start=decay_start)
        check_ranges(AT_LEAST_ONE, input_channels=input_channels, image_size=image_size, lr_reference_batch=lr_reference_batch)
        check_lars_options(optimizer, lars_options)
        check_compile_options(compile_options)
        check_lr_scaling(lr_scaling, lr_reference_batch)
        options = dict(backbone_options or {})
        self.input_channels = backbone_channels(input_channels, options)
        options.pop("input_channels", None)
        network_backbone = build_backbone(backbone, input_channels=self.input_channels, image_size=image_size, **options)
        self.network = self.build_network(network_backbone, self.num_classes)
        self.ema = EMA(self.network, ema_decay, ema_buffers) if ema_decay is not None else None
        if compile_options and not compile:
            rank_zero_warn("compile_options are ignored because compile is off; set compile: true to use them")
        if compile:
            self.compile_backbones(compile_options or {})
        self.val_metrics = classification_metrics(self.num_classes, "val/")
        self.test_metrics = classification_metrics(self.num_classes, "test/")
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
                raise ConfigError(f"compile needs a network with a `backbone`; {type(network).__name__} has none")
            network.backbone.compile(**options)

    @property
    def eval_network(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.network

    ema_role = "EMA"  # what pictures call the EMA copy ("teacher (EMA)" where it makes the targets)

    @property
    def eval_network_name(self) -> str:
        """Which network evaluation runs, for picture titles."""
        return self.ema_role if self.ema is not None and self.eval_network is self.ema.module else "online network"

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
            raise ConfigError(
                f"model.num_classes={self.num_classes} but the data has {data_classes} classes; "
                f"set --model.init_args.num_classes {data_classes} (or leave it unset: it follows the data)"
            )
        if stage == "fit" and hasattr(datamodule, "stream_views"):
            self.check_streams(datamodule)
        if stage == "fit" and self.hparams.init_from:
            # A resumed run restores its checkpoint after this, so this only matters for a fresh start.
            self.initialise_from(self.hparams.init_from)
            if self.ema is not None:
                self.ema.module.load_state_dict(self.network.state_dict())
        if self.hparams.channels_last:
            # Here rather than in __init__: methods build their heads and teachers after it. The
            # parameters stay the same objects (only their strides change), before any optimizer exists.
            self.to(memory_format=torch.channels_last)

    def required_streams(self) -> tuple[str, ...]:
        """The streams a training step reads: those `views` asks views of (subclasses with an
        optional stream, e.g. SimCLR's labeled probe rows, override this)."""
        return tuple(stream for stream, views in self.views.items() if views)

    def check_streams(self, datamodule) -> None:
        """Refuse data that leaves out a stream the training step reads (it would fail there with a KeyError)."""
        streams = datamodule.stream_views()
        for stream in self.required_streams():
            if streams.get(stream):
                continue
            method = type(self).__name__
            if stream == "unlabeled" and datamodule.unlabeled_batch() == 0:
                fix = ("set --data.init_args.unlabeled_batch_size > 0 (or null)" if datamodule.unlabeled_batch_size == 0
                       else "set --data.init_args.unlabeled_ratio (mu) > 0")
                raise ConfigError(f"{method} trains on unlabeled images, but the unlabeled batch is 0: {fix}")
            raise ConfigError(
                f"{method} trains on {stream} images, but --data.init_args.{stream}_views is empty: "
                f"remove it (the method's own views are used) or name the views"
            )

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
            raise ResumeRefused("this checkpoint was not written by sslzoo (no 'sslzoo' entry); load its weights by hand")
        mine = self._identity()
        if saved != mine:
            diff = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs this run {mine.get(k)!r}" for k in mine if saved.get(k) != mine.get(k))
            raise ResumeRefused(f"checkpoint does not fit this model ({diff}); resume with the same method, backbone and classes")
        if self.strict_loading and isinstance(checkpoint.get("state_dict"), dict):
            # Parameters only: some buffers (SCAN's neighbour tables) legitimately change size.
            buffers = {name for name, _ in self.named_buffers()}
            saved = {k: v for k, v in checkpoint["state_dict"].items() if k not in buffers}
            mismatch = network_mismatch(saved, dict(self.named_parameters()))
            if mismatch:
                raise ResumeRefused(
                    f"the checkpoint's network is not this model's: {mismatch}; build the network it was trained with "
                    "(the same backbone and backbone_options; --changed_hparams command_line cannot change the network)"
                )
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
        """What `sslzoo.predictions.PredictionWriter` writes: the evaluated logits, each image's index
        and label (-1: unknown), and the evaluated backbone's features when the writer asks for them
        (it sets `predict_features`; they cost a second backbone pass)."""
        x = batch["x"]
        outputs = {"logits": self.eval_logits(x), "idx": batch["idx"], "y": batch.get("y", torch.full_like(batch["idx"], -1))}
        if getattr(self, "predict_features", False):
            outputs["features"] = self.eval_features(x)
        return outputs
