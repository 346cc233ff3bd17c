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

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import datamodules  # noqa: F401  (registers the datamodule classes for --data)
import sslzoo.methods  # noqa: F401  (registers the method classes for --model)
from datamodules import SSLDataModule
from sslzoo.callbacks import LogCheckpointPaths, checkpoint_dir
from sslzoo.checkpointing import AtomicCheckpointIO, BestCheckpoint, LastCheckpoint, Preemption, resolve_ckpt_path
from sslzoo.checkpointing.resume_hparams import changed_hparams, describe, saved_model_config
from sslzoo.errors import ResumeRefused, SSLZooError
from sslzoo.methods import SSLMethod
from sslzoo.modules.sync_batchnorm import SyncBatchNormAnyDevice
from sslzoo.pictures import ValidationPictures
from sslzoo.report import RunSummary
from sslzoo.report.command import main as report_main
from sslzoo.source_version import LogSourceVersion


def default_callbacks() -> list[L.Callback]:
    """Callbacks every run of the CLI gets (fresh instances per CLI; add new ones here)."""
    return [LogCheckpointPaths(), RunSummary(), LogSourceVersion()]


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
        parser.set_defaults(
            {
                "checkpoint.monitor": "auto",  # the method's checkpoint_metric
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-{epoch}-{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
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
        return super()._instantiate_trainer(config, callbacks)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        config_files = [str(path) for path in (config.get("config") or [])]
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunSummary):
                callback.config_files = config_files

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        # Load checkpoints without executing pickled code unless the user opts out
        # (--weights_only false); Lightning's own default is False.
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand] and kwargs.get("weights_only") is None:
            kwargs["weights_only"] = True
        return kwargs


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
    return SSLZooCLI(
        SSLMethod,
        SSLDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "default_root_dir": "runs/default",
            "callbacks": default_callbacks(),
        },
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> None:
    """`sslzoo report ...` goes to sslzoo.report; everything else to LightningCLI. sslzoo's own
    errors end the command with their one-line message (SSLZOO_TRACEBACK=1 shows the traceback)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["report"]:
        sys.exit(report_main(args[1:]))
    try:
        build_cli(argv)
    except SSLZooError as err:
        if os.environ.get("SSLZOO_TRACEBACK"):
            raise
        sys.stderr.write(f"sslzoo: error: {err}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
