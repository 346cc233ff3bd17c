"""The `sslzoo` command: LightningCLI over every method and datamodule.

    sslzoo fit --config experiments/fixmatch/cifar10_40.yaml [--trainer.max_epochs 2 ...]
    sslzoo fit --model FixMatch --data CIFAR10DataModule --data.num_labels 250
    sslzoo fit --config ... --ckpt_path last        # resume the run in the same default_root_dir
    sslzoo fit --config ... --ckpt_path auto        # resume when there is a checkpoint, else start (requeued jobs)
    sslzoo report runs/ [--format csv] [--output results.md]   # results table vs. the papers (sslzoo.report)
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import datamodules  # noqa: F401  (registers the datamodule classes for --data)
from sslzoo.model_from_data import fill_model_from_data, peek_datamodule
from sslzoo.nested_options import merge_options_across_configs
from sslzoo.run_folder import check_writable
import sslzoo.methods  # noqa: F401  (registers the method classes for --model)
from datamodules import SSLDataModule
from sslzoo.callbacks import checkpoint_dir, wandb_run_id
from sslzoo.checkpointing import AtomicCheckpointIO, BestCheckpoint, LastCheckpoint, Preemption, resolve_ckpt_path
from sslzoo.checkpointing.resume_hparams import changed_hparams, describe, saved_model_config
from sslzoo.errors import ConfigError, ResumeRefused, SSLZooError
from sslzoo.methods import SSLMethod
from sslzoo.modules.sync_batchnorm import SyncBatchNormAnyDevice
from sslzoo.pictures import ValidationPictures
from sslzoo.predictions import PredictionWriter
from sslzoo.progress import progress_bar_callbacks
from sslzoo.report.run_summary import RunSummary
from sslzoo.standard_callbacks import BEST_CHECKPOINT_DEFAULTS, run_record_callbacks


def default_callbacks() -> list[L.Callback]:
    """Callbacks every run of the CLI gets (fresh instances per CLI; add new ones to
    `run_record_callbacks`, so Python API users get them too)."""
    return run_record_callbacks()


class LogConfigCallback(SaveConfigCallback):
    """Save config.yaml to the run folder and give the whole config to the loggers (W&B, TensorBoard)."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = json.loads(self.parser.dump(self.config, skip_none=False, format="json"))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


HPARAM_CHANGE_POLICIES = ("refuse", "command_line")


class SSLZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults({f"checkpoint.{key}": value for key, value in BEST_CHECKPOINT_DEFAULTS.items()})
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.link_arguments("trainer.default_root_dir", "last_checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.add_lightning_class_args(Preemption, "preemption")
        parser.add_argument(
            "--changed_hparams", choices=HPARAM_CHANGE_POLICIES, default="refuse",
            help="fit --ckpt_path with model values that differ from the checkpoint's: refuse (default), or "
            "train on with the command line's values (a warning lists them)",
        )  # fmt: skip
        parser.add_lightning_class_args(ValidationPictures, "pictures")
        # `sslzoo predict` writes <run dir>/predictions_<split>.csv (--data.init_args.predict_split)
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        self._configure_model_from_data()

    def _subcommand_config(self):
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def _configure_model_from_data(self) -> None:
        """Unset num_classes / input_channels / image_size of the model follow the datamodule's
        facts (read before any image is loaded); a pinned value must agree with them."""
        config = self._subcommand_config()
        model, data = config.get("model"), config.get("data")
        if model is None or data is None or model.get("init_args") is None:
            return
        filled = fill_model_from_data(model, peek_datamodule(data))
        if filled:
            rank_zero_info("sslzoo: from the data: " + ", ".join(f"model.{k}={v}" for k, v in filled.items()))

    def before_instantiate_classes(self) -> None:
        check_writable(self._subcommand_config()["trainer"].get("default_root_dir") or ".")

    # ---- --ckpt_path: resolved and checked before anything is built ----------
    def _parse_ckpt_path(self) -> None:
        # Replaces LightningCLI's, which lets the checkpoint's hyper-parameters silently override the
        # command line (a FixMatch command would train the checkpoint's Supervised) and ignores weights_only.
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        if config.get("checkpoint", {}).get("save_last"):
            raise SSLZooError("last.ckpt is written by --last_checkpoint.* (atomically, always the newest state); leave --checkpoint.save_last unset")
        path, notes = resolve_ckpt_path(config.get("ckpt_path"), config["last_checkpoint"]["dirpath"], subcommand)
        for note in notes:
            rank_zero_info(f"sslzoo: {note}")
        config["ckpt_path"] = path
        if path is None or not os.path.isfile(path):
            return
        weights_only = config.get("weights_only")
        checkpoint = load_checkpoint_header(path, True if weights_only is None else weights_only)
        self._check_model_against(checkpoint, path, subcommand)
        if subcommand == "fit":
            continue_wandb_run(config["trainer"], wandb_run_id(checkpoint))

    def _check_model_against(self, checkpoint: dict, path: str, subcommand: str) -> None:
        saved_class, saved_args = saved_model_config(checkpoint)
        model = self.config[subcommand]["model"]
        current_class = str(model["class_path"]).rsplit(".", 1)[-1]
        if saved_class is not None and saved_class != current_class:
            raise ResumeRefused(f"{path} was trained by {saved_class}, but this command builds {current_class}; use --model {saved_class} (or its config)")
        current_args = self.parser.dump(self.config, skip_link_targets=False, skip_none=False, format="json")
        current_args = json.loads(current_args)[subcommand]["model"].get("init_args", {})
        changes = changed_hparams(saved_args, current_args)
        if not changes:
            return
        if subcommand != "fit":
            # Evaluation rebuilds the network the checkpoint holds (LightningCLI's behaviour), loudly.
            saved = {"class_path": str(model["class_path"]), "init_args": {k: old for k, (old, _) in changes.items()}}
            self.config = self.parser.parse_object({subcommand: {"model": saved}}, self.config)
            rank_zero_warn(f"sslzoo: {subcommand} uses {path}'s values: {describe(changes)}")
        elif self.config[subcommand]["changed_hparams"] == "refuse":
            raise ResumeRefused(
                f"{path} was trained with other values ({describe(changes)}). Resume with the checkpoint's values, "
                "start a new run in another --trainer.default_root_dir, or pass --changed_hparams command_line to train on with yours"
            )
        else:
            rank_zero_warn(f"sslzoo: resuming {path} with the command line's values: {describe(changes)}")

    def after_fit(self) -> None:
        """A fit stopped by a pre-emption signal exits non-zero, so `sslzoo fit ... && sslzoo test ...` stops."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, Preemption) and callback.received is not None:
                callback.finish(self.trainer)
                sys.exit(callback.exit_code)

    # ---- trainer -------------------------------------------------------------
    def _instantiate_trainer(self, config: dict, callbacks: list) -> L.Trainer:
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list) else [plugins]
        # torch's SyncBatchNorm refuses CPU modules; this plugin keeps it on GPUs and syncs over gloo
        # elsewhere. Only with sync_batchnorm: Lightning applies any layer-sync plugin it is given.
        if config.get("sync_batchnorm"):
            plugins.append(SyncBatchNormAnyDevice())
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        config["plugins"] = plugins
        given = [c for c in (config.get("callbacks") or []) if isinstance(c, L.Callback)] + list(callbacks)
        callbacks = list(callbacks) + progress_bar_callbacks(config.get("enable_progress_bar"), given)
        trainer = super()._instantiate_trainer(config, callbacks)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger._default_hp_metric = False  # no `hp_metric` -1 rows: runs are compared on their own metrics
        return trainer

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        config_files = [str(path) for path in (config.get("config") or [])]
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunSummary):
                callback.config_files = config_files
        for logger in self.trainer.loggers:
            # W&B looks for a git checkout in its save_dir and warns ("git root ... does not exist")
            # when that folder is not there yet.
            if isinstance(logger, WandbLogger) and logger.save_dir:
                Path(logger.save_dir).mkdir(parents=True, exist_ok=True)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        # Load checkpoints without executing pickled code unless the user opts out
        # (--weights_only false); Lightning's own default is False.
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand] and kwargs.get("weights_only") is None:
            kwargs["weights_only"] = True
        if subcommand == "predict" and kwargs.get("return_predictions") is None:
            kwargs["return_predictions"] = False  # the PredictionWriter has them; an ImageNet pool's logits need not stay in memory
        return kwargs


def continue_wandb_run(trainer_config, run_id: str | None) -> None:
    """A resumed fit logs into the W&B run its checkpoint came from (the id `RememberWandbRun`
    stored), unless the command names a run id itself; Lightning's WandbLogger resumes with "allow"."""
    loggers = trainer_config.get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    for logger in loggers:
        if run_id is None or not hasattr(logger, "get") or not str(logger.get("class_path", "")).endswith("WandbLogger"):
            continue
        init_args = logger["init_args"]
        if init_args.get("id") is None and init_args.get("version") is None:
            init_args["id"] = run_id
            rank_zero_info(f"sslzoo: continuing W&B run {run_id}")


def load_checkpoint_header(path: str, weights_only: bool) -> dict:
    """The checkpoint's contents without reading its tensors (memory-mapped)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
    except Exception as err:
        if weights_only and "weights_only" in str(err):
            raise ResumeRefused(f"{path} holds pickled Python objects, which are not loaded by default; if you trust the file, add --weights_only false") from err
        raise ResumeRefused(f"{path} could not be read ({type(err).__name__}: {str(err).splitlines()[0]}); pass another checkpoint") from err


def build_cli(args: list[str] | None = None, run: bool = True) -> SSLZooCLI:
    """The CLI object; with run=False it only parses and instantiates (for scripts and tests)."""
    merge_options_across_configs()
    return SSLZooCLI(
        SSLMethod,
        SSLDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        # Methods own their optimizers (no-decay groups, LR scaling, schedules per optimizer step):
        # LightningCLI's --optimizer/--lr_scheduler would silently replace all of that.
        auto_configure_optimizers=False,
        trainer_defaults={
            "default_root_dir": "runs/default",
            "callbacks": default_callbacks(),
        },
        # Lightning's own default (True) seeds 0 too, with a "No seed found" warning on every run.
        seed_everything_default=0,
        args=args,
        run=run,
    )


def one_line(err: SSLZooError) -> str:
    """The error's own message; an error re-raised from a DataLoader worker carries the worker's
    traceback ("Caught DataError in DataLoader worker process 0. Original Traceback ..."), whose
    last line is that message."""
    message = str(err).strip()
    if message.startswith("Caught "):
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return message


LIGHTNING_OPTIMIZER_FLAGS = ("--optimizer", "--lr_scheduler")


def refuse_lightning_optimizer_flags(args: list[str]) -> None:
    for arg in args:
        if arg.split("=", 1)[0].split(".", 1)[0] in LIGHTNING_OPTIMIZER_FLAGS:
            raise ConfigError(
                f"{arg.split('=', 1)[0]}: sslzoo methods build their own optimizer and schedule (no-decay groups, LR scaling, "
                "per-step schedules); set them with --model.init_args.optimizer / lr / weight_decay / scheduler / warmup_steps"
            )


def main(argv: list[str] | None = None) -> None:
    """LightningCLI (`sslzoo.command.main` sends `sslzoo report` elsewhere first). sslzoo's own
    errors end the command with their one-line message (SSLZOO_TRACEBACK=1 shows the traceback)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        refuse_lightning_optimizer_flags(args)
        build_cli(argv)
    except SSLZooError as err:
        if os.environ.get("SSLZOO_TRACEBACK"):
            raise
        sys.stderr.write(f"sslzoo: error: {one_line(err)}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
