"""The `sslzoo` command: LightningCLI over every method and datamodule.

    sslzoo fit --config experiments/fixmatch/cifar10_40.yaml [--trainer.max_epochs 2 ...]
    sslzoo fit --model FixMatch --data CIFAR10DataModule --data.num_labels 250
    sslzoo fit --config ... --ckpt_path last        # resume the run in the same default_root_dir
    sslzoo report runs/ [--format csv] [--output results.md]   # results table vs. the papers (sslzoo.report)
"""
from __future__ import annotations

import json
import sys

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

import datamodules  # noqa: F401  (registers the datamodule classes for --data)
import sslzoo.methods  # noqa: F401  (registers the method classes for --model)
from datamodules import SSLDataModule
from sslzoo.callbacks import LogCheckpointPaths, checkpoint_dir
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


class SSLZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch}-{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.add_lightning_class_args(ValidationPictures, "pictures")

    def _instantiate_trainer(self, config: dict, callbacks: list) -> L.Trainer:
        # torch's SyncBatchNorm refuses CPU modules; this plugin keeps it on GPUs and syncs over gloo
        # elsewhere. Only with sync_batchnorm: Lightning applies any layer-sync plugin it is given.
        if config.get("sync_batchnorm"):
            plugins = config.get("plugins") or []
            config["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), SyncBatchNormAnyDevice()]
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
    """`sslzoo report ...` goes to sslzoo.report; everything else to LightningCLI."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["report"]:
        sys.exit(report_main(args[1:]))
    build_cli(argv)


if __name__ == "__main__":
    main()
