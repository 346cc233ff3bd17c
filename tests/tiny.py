"""Tiny data, backbones and trainers for end-to-end method tests."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

import fakes
from datamodules import ArrayDataModule
from sslzoo.nets import BACKBONES


class TinyMLP(nn.Module):
    """A batch-independent backbone (no BatchNorm): per-sample math, so sharding a batch
    over processes changes nothing and DDP must equal one process. Takes size x size images."""

    def __init__(self, input_channels: int = 3, size: int = 8, feature_dim: int = 16):
        super().__init__()
        self.feature_dim = feature_dim
        in_features = input_channels * size * size
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, 32), nn.ReLU(), nn.Linear(32, feature_dim), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class TinyConv(nn.Module):
    """A batch-independent backbone for any image size (multi-crop): conv, global pooling, linear."""

    def __init__(self, input_channels: int = 3, feature_dim: int = 16):
        super().__init__()
        self.feature_dim = feature_dim
        self.net = nn.Sequential(
            nn.Conv2d(input_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, feature_dim), nn.ReLU()
        )

    def forward(self, x):
        return self.net(x)


BACKBONES.setdefault("tiny_mlp", TinyMLP)
BACKBONES.setdefault("tiny_conv", TinyConv)

TINY_BACKBONES = {
    "tiny_mlp": ("tiny_mlp", {}),
    "tiny_conv": ("tiny_conv", {}),
    "tiny_wrn": ("wide_resnet", {"depth": 10, "widen_factor": 1}),
}


def tiny_npz(tmp_path: Path, size: int = 8, num_train: int = 64, num_test: int = 16, num_classes: int = 4) -> Path:
    return fakes.write_npz(Path(tmp_path) / "tiny.npz", num_train=num_train, num_test=num_test, num_classes=num_classes, size=size)


def tiny_datamodule(path: Path, **overrides) -> ArrayDataModule:
    options = dict(num_labels=8, batch_size=4, unlabeled_ratio=2, eval_batch_size=16, num_workers=0, shuffle_seed=0)
    options.update(overrides)
    return ArrayDataModule(str(path), **options)


def tiny_trainer(tmp_path: Path, **overrides) -> L.Trainer:
    options = dict(
        default_root_dir=str(tmp_path),
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        deterministic=True,
    )
    options.update(overrides)
    return L.Trainer(**options)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def toy_cli_args(tmp_path, *extra) -> list[str]:
    """CLI arguments for a tiny FixMatch fit on fake data (without the subcommand)."""
    path = tiny_npz(tmp_path)
    return [
        "--model", "FixMatch", "--model.num_classes", "4", "--model.backbone", "tiny_mlp",
        "--data", "ArrayDataModule", "--data.path", str(path), "--data.num_labels", "8",
        "--data.batch_size", "4", "--data.unlabeled_ratio", "2", "--data.num_workers", "0", "--data.steps_per_epoch", "3",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"), *extra,
    ]
