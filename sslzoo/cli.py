"""The `sslzoo` command: LightningCLI over every method and datamodule.

    sslzoo fit --config experiments/fixmatch/cifar10_40.yaml [--trainer.max_epochs 2 ...]
    sslzoo fit --model FixMatch --data CIFAR10DataModule --data.num_labels 250
    sslzoo fit --config ... --ckpt_path last        # resume the run in the same default_root_dir
"""
from __future__ import annotations

import json
import sys

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

import datamodules  # noqa: F401  (registers the datamodule classes for --data)
import sslzoo.methods  # noqa: F401  (registers the method classes for --model)
from datamodules import SSLDataModule
from sslzoo.callbacks import LogCheckpointPaths, checkpoint_dir
from sslzoo.methods import SSLMethod


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
            "callbacks": [LogCheckpointPaths()],
        },
        args=args,
        run=run,
    )


def main() -> None:
    build_cli()


if __name__ == "__main__":
    main()
