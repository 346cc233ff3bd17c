"""The `sslzoo` CLI and every shipped config, run for 2 steps on tiny fake data."""
import json
from pathlib import Path

import pytest
import torch
import yaml

import ddp
import fakes
import tiny
from sslzoo.cli import build_cli

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "experiments").rglob("*.yaml") if not {"sweeps", "loggers"} & set(p.parts))


MULTICROP_METHODS = ("Suave", "Daino", "SwAV", "DINO")


def _model(config: Path) -> dict:
    return yaml.safe_load(config.read_text())["model"]


def _is_multicrop(config: Path) -> bool:
    return _model(config)["class_path"].rsplit(".", 1)[-1] in MULTICROP_METHODS


# Each backbone runs once at its real size, in the cheapest config that uses it (multi-crop
# methods last); the other configs swap in a tiny WRN, so every config is still parsed and
# trained for two steps with its own method, data and views. WRN-28-8, ResNet-50 and ViT-S
# in every config would cost many minutes on CPU.
FULL_BACKBONE_RUNS: dict[str, Path] = {}
for _config in sorted(CONFIGS, key=lambda c: (_is_multicrop(c), c)):
    FULL_BACKBONE_RUNS.setdefault(_model(_config)["init_args"]["backbone"], _config)


def _small_views(specs: list) -> list:
    """ImageNet-size view specs shrunk for a 32 px test run (locals 16 px: a ViT-S/16 patch)."""
    small = []
    for spec in specs:
        spec = dict(spec) if isinstance(spec, dict) else {"name": spec}
        for key, size in (("global_size", 32), ("local_size", 16)):
            if key in spec:
                spec[key] = size
        small.append(spec)
    return small


def _fake_root(tmp_path: Path, data_class: str) -> dict:
    """Overrides that point a config's datamodule at a tiny fake dataset of the same kind."""
    name = data_class.rsplit(".", 1)[-1]
    if name == "CIFAR10DataModule":
        return {"root": str(fakes.write_cifar10(tmp_path)), "num_labels": 10}
    if name == "CIFAR100DataModule":
        return {"root": str(fakes.write_cifar100(tmp_path)), "num_labels": 100}
    if name == "SVHNDataModule":
        return {"root": str(fakes.write_svhn(tmp_path)), "num_labels": 10}
    if name == "STL10DataModule":
        return {"root": str(fakes.write_stl10(tmp_path))}
    if name == "ImageNetDataModule":
        root = fakes.write_image_folder(tmp_path / "imagenet", splits=("train", "val"), per_class=(4, 1), size=40)
        for subset in ("1percent", "10percent"):
            (root / f"{subset}.txt").write_text("n01_train0.JPEG\nn02_train1.JPEG\nn03_train2.JPEG\n")
        return {"root": str(root), "eval_batch_size": 1}
    if name == "ArrayDataModule":
        return {"path": str(fakes.write_npz(tmp_path / "digits.npz", num_train=60, num_test=20, num_classes=10, size=8, channels=1))}
    raise AssertionError(f"no fake data for {data_class}; add it here when adding a dataset")


def _process_layout(config: Path) -> str | None:
    """A multi-GPU config's shape shrunk to 2 CPU processes: "2x1" (nodes x processes) for a
    multi-node config, "1x2" for one node of several devices; None for a one-device config."""
    trainer = yaml.safe_load(config.read_text()).get("trainer") or {}
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if nodes > 1:
        return "2x1"
    return "1x2" if isinstance(devices, int) and devices > 1 else None


MULTI_PROCESS = {config: layout for config in CONFIGS if (layout := _process_layout(config))}
# fp16 autocast and its GradScaler need a GPU; bf16-mixed is their CPU stand-in (configs' bf16-mixed and 32 run as they are).
CPU_PRECISION = {"16-mixed": "bf16-mixed", "16": "bf16-mixed", "16-true": "bf16-true"}


def _config_id(config: Path) -> str:
    return str(config.relative_to(REPO / "experiments"))


def _tiny_run_args(tmp_path: Path, config: Path, pretext: Path | None = None) -> list[str]:
    data = yaml.safe_load(config.read_text())["data"]
    args = ["--config", str(config)]
    overrides = {"eval_batch_size": 2, **_fake_root(tmp_path, data["class_path"])}
    for key, value in overrides.items():
        args += [f"--data.init_args.{key}", str(value)]
    layout = _process_layout(config)
    if layout:  # the config's own strategy and sync_batchnorm, on 2 CPU processes
        nodes, devices = layout.split("x")
        args += ["--trainer.num_nodes", nodes, "--trainer.devices", devices]
    precision = str((yaml.safe_load(config.read_text()).get("trainer") or {}).get("precision"))
    if precision in CPU_PRECISION:
        args += ["--trainer.precision", CPU_PRECISION[precision]]
    elif layout and precision.startswith("bf16") and FULL_BACKBONE_RUNS[_model(config)["init_args"]["backbone"]] == config:
        # A full ResNet-50 in bf16 is ~10x slower on a CPU without bf16 units (a minute); this config's
        # precision runs with the tiny backbone in the method's other configs (suave/imagenet_1percent.yaml).
        args += ["--trainer.precision", "32"]
    if data["class_path"].endswith("ImageNetDataModule"):
        args += ["--model.init_args.num_classes", "3", "--data.init_args.image_size", "32"]  # the fake ImageNet: 3 classes, 40 px
        for stream in ("labeled_views", "unlabeled_views"):
            if data["init_args"].get(stream):
                args += [f"--data.init_args.{stream}", json.dumps(_small_views(data["init_args"][stream]))]
    backbone = _model(config)["init_args"]["backbone"]
    if FULL_BACKBONE_RUNS[backbone] != config and backbone != "wide_resnet":  # wide_resnet configs are already small
        args += ["--model.init_args.backbone", "wide_resnet", "--model.init_args.backbone_options", "{depth: 10, widen_factor: 1}"]
    if "init_from" in yaml.safe_load(config.read_text())["model"]["init_args"]:
        args += ["--model.init_args.init_from", "null"]  # the pretraining run it chains to is not there (tested in test_suave_daino)
    model_args = _model(config)["init_args"]
    if "neighbours_file" in model_args:
        args += ["--model.init_args.neighbours_file", "null"]  # mine afresh, and write nothing into the repository
    if _model(config)["class_path"].endswith(".SCAN"):
        # A tiny SimCLR run mines the neighbours (the chain is tested in test_scan); the fakes hold a dozen images.
        args += ["--model.init_args.pretext", str(pretext), "--model.init_args.num_neighbours", "3"]
    if "clustering_batch_size" in model_args:
        args += ["--model.init_args.clustering_batch_size", "2"]  # Boosted SSL's phase batch (128 x 4 rotations at 96 px is 20 GB)
    if "classes" in data["init_args"]:
        args += ["--data.init_args.classes", "null"]  # the fake ImageNet has its own 3 classes
    args += [
        "--data.init_args.download", "false",
        "--data.init_args.batch_size", "1",
        "--data.init_args.unlabeled_ratio", "1",
        "--data.init_args.unlabeled_batch_size", "null",
        "--data.init_args.num_workers", "0",
        "--data.init_args.steps_per_epoch", "2",
        "--trainer.max_steps", "2",
        "--trainer.max_epochs", "1",
        "--trainer.limit_val_batches", "2",
        "--trainer.check_val_every_n_epoch", "1",
        "--trainer.val_check_interval", "null",
        "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"),
    ]
    return args


@pytest.fixture(scope="module")
def tiny_pretext(tmp_path_factory) -> Path:
    """A SimCLR checkpoint of a tiny any-resolution network, for SCAN configs to mine neighbours with."""
    import lightning as L

    from sslzoo.methods import SimCLR

    tmp = tmp_path_factory.mktemp("pretext")
    method = SimCLR(num_classes=10, backbone="tiny_conv", hidden_dim=8, projection_dim=4)
    trainer = tiny.tiny_trainer(tmp, max_steps=0)
    trainer.strategy.connect(method)
    path = tmp / "simclr.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def multi_process_runs(tmp_path_factory, tiny_pretext) -> dict:
    """Every multi-GPU config's 2-step fit as 2 CPU processes: one torchrun launch per layout, the
    configs one after another in the same worker pair (tests/torchrun_cli.py)."""
    tmp = tmp_path_factory.mktemp("multi_process_configs")
    results = {}
    for layout in sorted(set(MULTI_PROCESS.values())):
        jobs = {_config_id(c).replace("/", "__"): _tiny_run_args(tmp / _config_id(c).replace("/", "__"), c, tiny_pretext)
                for c, shape in MULTI_PROCESS.items() if shape == layout}
        results.update(ddp.run_cli_jobs(jobs, tmp / layout, layout=layout))
    return results


@pytest.mark.parametrize(
    "config", [pytest.param(c, marks=[pytest.mark.slow] if c in MULTI_PROCESS else []) for c in CONFIGS], ids=[_config_id(c) for c in CONFIGS]
)
def test_every_config_parses_and_runs_two_steps(tmp_path, config, tiny_pretext, request):
    """One-device configs train in this process; multi-GPU ones as 2 CPU processes (1 node x 2, or
    2 nodes x 1 for a multi-node config) with their own strategy, sync_batchnorm and precision."""
    cli = build_cli(_tiny_run_args(tmp_path, config, tiny_pretext), run=False)
    original = yaml.safe_load(config.read_text())
    assert type(cli.model).__name__ == original["model"]["class_path"].rsplit(".", 1)[-1]
    for key in ("lr", "weight_decay"):
        assert getattr(cli.model.hparams, key) == original["model"]["init_args"][key]
    if FULL_BACKBONE_RUNS[original["model"]["init_args"]["backbone"]] == config or original["model"]["init_args"]["backbone"] == "wide_resnet":
        assert cli.model.hparams.backbone == original["model"]["init_args"]["backbone"]
    if config in MULTI_PROCESS:
        result = request.getfixturevalue("multi_process_runs")[_config_id(config).replace("/", "__")]
        assert "error" not in result, f"{result['error']}\n{result.get('traceback', result.get('log', ''))}"
        assert result["world_size"] == 2 and result["global_step"] == 2 and result["finite_loss"]
        assert result["strategy"] == type(cli.trainer.strategy).__name__ and result["precision"] == str(cli.trainer.precision)
        return
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_subclass_selection_and_cli_overrides_yaml(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  class_path: sslzoo.methods.FixMatch\n  init_args:\n    threshold: 0.5\n    num_classes: 4\n")
    cli = build_cli(["--config", str(config), *tiny.toy_cli_args(tmp_path)[2:], "--model.threshold", "0.8"], run=False)
    assert cli.model.threshold == 0.8 and cli.model.hparams.backbone == "tiny_mlp"


def test_print_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_cli(["fit", *tiny.toy_cli_args(tmp_path), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "sslzoo.methods.FixMatch"
    assert printed["checkpoint"]["monitor"] == "auto" and not printed["checkpoint"]["save_last"]
    assert printed["last_checkpoint"]["every_n_train_steps"] == 1000
    cli = build_cli(tiny.toy_cli_args(tmp_path), run=False)
    assert cli.trainer.checkpoint_callback.dirpath == str(tmp_path / "run" / "checkpoints")
    last = next(c for c in cli.trainer.callbacks if type(c).__name__ == "LastCheckpoint")
    assert last.dirpath == str(tmp_path / "run" / "checkpoints")


def test_fit_writes_checkpoints_and_resumes_from_last(tmp_path):
    build_cli(["fit", *tiny.toy_cli_args(tmp_path, "--trainer.max_epochs", "1")])
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file() and any(p.name.startswith("best-") for p in checkpoints.iterdir())
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 3
    cli = build_cli(["fit", *tiny.toy_cli_args(tmp_path, "--trainer.max_epochs", "2"), "--ckpt_path", "last"])
    assert cli.trainer.global_step == 6  # continued from step 3, not restarted
    config = yaml.safe_load((tmp_path / "run" / "lightning_logs" / "version_1" / "config.yaml").read_text())
    assert config["ckpt_path"] == str(checkpoints / "last.ckpt")  # resolved: the file this run continued


def test_wandb_offline_logs_config_metrics_and_checkpoint_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cli = build_cli(["fit", *tiny.toy_cli_args(tmp_path, "--trainer.max_epochs", "1", "--trainer.logger", "WandbLogger", "--trainer.logger.offline", "true", "--trainer.logger.save_dir", str(tmp_path), "--trainer.log_every_n_steps", "1")])
    run = cli.trainer.logger.experiment
    assert run.config["model"]["class_path"] == "sslzoo.methods.FixMatch"
    assert run.summary["checkpoint/last"].endswith("last.ckpt")
    assert {"train/loss", "train/mask_rate", "val/acc"} <= set(run.summary.keys())
    run.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*"))
