"""A new user's first hour through the `sslzoo` command: the data configures the model, nested
options merge, wrong values fail at parse time, and sslzoo's errors are one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fakes
import tiny
from sslzoo.cli import build_cli, main

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, str(Path(__file__).parent / "sslzoo_command.py")]


def run_command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def fit_args(tmp_path: Path, path: Path, *extra: str) -> list[str]:
    """A two-step FixMatch fit on `path` that names neither the classes nor the channels."""
    return [
        "--model", "FixMatch", "--model.backbone", "wide_resnet", "--model.backbone_options", "{depth: 10, widen_factor: 1}",
        "--data", "ArrayDataModule", "--data.path", str(path), "--data.num_labels", "8", "--data.batch_size", "4",
        "--data.unlabeled_ratio", "1", "--data.num_workers", "0", "--data.eval_batch_size", "8",
        "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"), *extra,
    ]  # fmt: skip


def one_line_error(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sslzoo: error: "), err
    return last


# ---- the data configures the model --------------------------------------------------------
def test_a_grayscale_npz_trains_with_no_extra_flag(tmp_path):
    path = fakes.write_npz(tmp_path / "grey.npz", num_train=40, num_test=8, num_classes=4, size=16, channels=1)
    cli = build_cli(["fit", *fit_args(tmp_path, path)])
    assert cli.trainer.global_step == 2
    assert cli.model.hparams.num_classes == 4 and cli.model.hparams.input_channels == 1
    assert cli.model.network.backbone.stem.in_channels == 1


def test_classes_follow_the_data_and_a_pinned_value_is_checked(tmp_path, capsys):
    path = fakes.write_npz(tmp_path / "six.npz", num_train=48, num_test=12, num_classes=6, size=8)
    cli = build_cli(fit_args(tmp_path, path), run=False)
    assert cli.model.num_classes == 6
    error = one_line_error(capsys, ["fit", *fit_args(tmp_path, path, "--model.num_classes", "10")])
    assert "num_classes=10" in error and "has 6" in error and "remove num_classes" in error


# ---- arguments parse as a user means them --------------------------------------------------
def test_a_nested_option_merges_across_configs_and_the_command_line(tmp_path):
    path = tiny.tiny_npz(tmp_path)
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("model:\n  init_args:\n    backbone: wide_resnet\n    backbone_options: {depth: 10, widen_factor: 1}\n")
    second.write_text("model:\n  init_args:\n    backbone_options: {widen_factor: 2}\n")
    args = fit_args(tmp_path, path)
    args = args[args.index("--data"):]
    cli = build_cli(["--model", "FixMatch", "--config", str(first), "--config", str(second), *args], run=False)
    assert cli.model.hparams.backbone_options == {"depth": 10, "widen_factor": 2}
    cli = build_cli(["--model", "FixMatch", "--config", str(first), "--model.backbone_options.widen_factor", "2", *args], run=False)
    assert cli.model.hparams.backbone_options == {"depth": 10, "widen_factor": 2}  # an int, not '2'


def test_a_wrong_choice_fails_at_parse_time_listing_the_choices(tmp_path, capsys):
    path = tiny.tiny_npz(tmp_path)
    with pytest.raises(SystemExit):
        build_cli(["fit", *fit_args(tmp_path, path, "--model.optimizer", "adamm")])
    err = capsys.readouterr().err
    assert "adamm" in err and "sgd" in err and "adamw" in err


@pytest.mark.parametrize("flag", ["--optimizer", "--lr_scheduler.class_path"])
def test_lightnings_optimizer_flags_are_refused(tmp_path, capsys, flag):
    error = one_line_error(capsys, ["fit", *fit_args(tmp_path, tiny.tiny_npz(tmp_path), flag, "Adam")])
    assert "build their own optimizer" in error and "--model.init_args.optimizer" in error


# ---- errors a person can read --------------------------------------------------------------
def test_a_run_folder_that_is_a_file_or_not_writable_is_refused_before_training(tmp_path, capsys, monkeypatch):
    path = tiny.tiny_npz(tmp_path)
    blocker = tmp_path / "blocked"
    blocker.write_text("")
    error = one_line_error(capsys, ["fit", *fit_args(tmp_path, path, "--trainer.default_root_dir", str(blocker / "run"))])
    assert f"{blocker} is a file" in error

    def read_only(*args, **kwargs):  # the tests run as root, for whom no folder is read-only
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("sslzoo.run_folder.tempfile.NamedTemporaryFile", read_only)
    error = one_line_error(capsys, ["fit", *fit_args(tmp_path, path)])
    assert "not writable (Permission denied)" in error and not (tmp_path / "run" / "checkpoints").exists()


def test_report_starts_without_importing_lightning(tmp_path):
    code = "import sys; from sslzoo.command import main\ntry:\n    main(['report', sys.argv[1]])\nexcept SystemExit:\n    pass\nprint('lightning' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_an_error_from_a_loader_worker_is_one_line_too():
    from torch.utils.data._utils import ExceptionWrapper

    from sslzoo.cli import one_line
    from sslzoo.errors import DataError

    try:
        raise DataError("photo.jpg is 20x16 pixels, not 16x16; resize it")
    except DataError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    try:
        wrapped.reraise()
    except DataError as err:
        assert one_line(err) == "photo.jpg is 20x16 pixels, not 16x16; resize it"


# ---- what a run gives back, and resumes that cannot work ------------------------------------
def test_predict_through_the_cli_writes_one_row_per_test_image(tmp_path):
    path = fakes.write_npz(tmp_path / "d.npz", num_train=40, num_test=8, num_classes=4, size=8)
    build_cli(["fit", *fit_args(tmp_path, path)])
    build_cli(["predict", *fit_args(tmp_path, path), "--ckpt_path", "last", "--predictions.probabilities", "true"])
    table = next((tmp_path / "run").rglob("predictions_test.csv")).read_text().splitlines()
    assert table[0].split(",")[:2] == ["index", "label"] and len(table) == 1 + 8
    arrays = np.load(next((tmp_path / "run").rglob("predictions_test.npz")))
    assert arrays["probabilities"].shape == (8, 4)


def test_a_resume_into_another_network_is_refused_in_one_line(tmp_path, capsys):
    path = fakes.write_npz(tmp_path / "d.npz", num_train=40, num_test=8, num_classes=4, size=8)
    build_cli(["fit", *fit_args(tmp_path, path)])
    deeper = ["--model.backbone_options.depth", "16", "--trainer.max_steps", "4", "--ckpt_path", "last"]
    error = one_line_error(capsys, ["fit", *fit_args(tmp_path, path, *deeper)])
    assert "trained with other values" in error and "'depth': 10" in error
    error = one_line_error(capsys, ["fit", *fit_args(tmp_path, path, *deeper, "--changed_hparams", "command_line")])
    assert "network is not this model's" in error and "missing from the checkpoint" in error
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:3000])
    error = one_line_error(capsys, ["test", *fit_args(tmp_path, path, "--ckpt_path", str(truncated))])
    assert "is not a complete checkpoint" in error


def test_a_resumed_fit_continues_the_checkpoints_wandb_run():
    from jsonargparse import Namespace

    from sslzoo.cli import continue_wandb_run

    wandb = Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(id=None, version=None, project="p"))
    tensorboard = Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger", init_args=Namespace(save_dir="x"))
    continue_wandb_run(Namespace(logger=[tensorboard, wandb]), "abc123")
    assert wandb.init_args.id == "abc123" and "id" not in tensorboard.init_args
    named = Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(id="mine", version=None))
    continue_wandb_run(Namespace(logger=named), "abc123")
    assert named.init_args.id == "mine"  # a run id on the command line wins
