"""What a run shows and leaves besides its metrics: the progress bar, the warnings it prints, and
the W&B run id in its checkpoints."""
import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

import tiny
from sslzoo.callbacks import RememberWandbRun, wandb_run_id
from sslzoo.methods import FixMatch
from sslzoo.progress import SSLProgressBar, progress_bar_callbacks

TESTS = Path(__file__).resolve().parent
BACKBONE, OPTIONS = tiny.TINY_BACKBONES["tiny_mlp"]

# What FixMatch puts in the progress bar, in its logging order (long names first).
FIXMATCH_BAR = {"train/mask_rate": 0.953, "train/pseudo_acc_masked": 0.871, "train/loss": 1.25, "val/acc": 0.912}


def _bar_line(metrics: dict, columns: int = 100) -> str:
    """The training bar's line as a `columns`-wide terminal shows it, late in a long run."""
    bar = Tqdm(total=1024, desc="Epoch 1023", ncols=columns, file=io.StringIO(), bar_format=TQDMProgressBar.BAR_FORMAT)
    bar.n = 341
    bar.set_postfix(metrics, refresh=False)
    line = str(bar)
    bar.close()
    return line


def test_progress_bar_keeps_loss_and_accuracy_within_100_columns():
    trainer = SimpleNamespace(progress_bar_metrics=FIXMATCH_BAR)
    shown = SSLProgressBar().get_metrics(trainer, None)
    assert list(shown) == ["loss", "val/acc", "mask", "pl_acc"]
    line = _bar_line(shown)
    assert len(line) <= 100 and "loss=1.250" in line and "val/acc=0.912" in line
    assert "val/acc" not in _bar_line({"v_num": 0, **FIXMATCH_BAR})  # Lightning's own bar cuts it off


def test_clustering_methods_show_their_cluster_accuracy():
    logged = {"train/mask_rate": 0.5, "train/loss": 0.7, "val/cluster_acc_many_to_one": 0.64}
    line = _bar_line(SSLProgressBar().get_metrics(SimpleNamespace(progress_bar_metrics=logged), None))
    assert "loss=0.700" in line and "val/cluster_acc=0.640" in line
    custom = SSLProgressBar(metrics={"train/mask_rate": "mask"}).get_metrics(SimpleNamespace(progress_bar_metrics=logged), None)
    assert custom == {"mask": 0.5}


def test_the_bar_is_added_only_where_lightning_accepts_it(tmp_path):
    assert progress_bar_callbacks(False, []) == []  # --trainer.enable_progress_bar false
    assert progress_bar_callbacks(True, [TQDMProgressBar()]) == []  # the user's own bar
    (bar,) = progress_bar_callbacks(None, [RememberWandbRun()])
    trainer = tiny.tiny_trainer(tmp_path, enable_progress_bar=True, callbacks=[bar])
    assert trainer.progress_bar_callback is bar
    trainer = tiny.tiny_trainer(tmp_path, enable_progress_bar=False, callbacks=progress_bar_callbacks(False, []))
    assert trainer.progress_bar_callback is None


def test_a_fit_shows_the_short_names(tmp_path, capsys):
    L.seed_everything(0)
    method = FixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, threshold=0.5)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=None, enable_progress_bar=True, callbacks=[SSLProgressBar()])
    trainer.fit(method, datamodule=tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2))
    shown = capsys.readouterr()
    output = shown.out + shown.err
    assert "loss=" in output and "val/acc=" in output and "mask=" in output
    assert "v_num" not in output and "train/pseudo_acc_masked" not in output


# ---- warnings of every run --------------------------------------------------------------------
def test_a_cli_fit_prints_no_leafspec_or_sparse_warning(tmp_path):
    """The whole command, warnings shown once per place (-W default) as a user sees them."""
    args = [arg for arg in tiny.toy_cli_args(tmp_path, "--trainer.max_epochs", "1") if arg]
    done = subprocess.run(
        [sys.executable, "-W", "default", str(TESTS / "sslzoo_command.py"), "fit", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "LeafSpec" not in done.stderr and "Sparse invariant" not in done.stderr


# ---- W&B run id in the checkpoint ---------------------------------------------------------------
def test_the_wandb_run_id_goes_into_the_checkpoint(tmp_path):
    wandb_logger = WandbLogger(offline=True, id="abc123", save_dir=str(tmp_path))  # no run started: its id is the given one
    checkpoint = {}
    trainer = SimpleNamespace(loggers=[TensorBoardLogger(str(tmp_path)), wandb_logger])
    RememberWandbRun().on_save_checkpoint(trainer, None, checkpoint)
    assert wandb_run_id(checkpoint) == "abc123" and checkpoint["sslzoo_wandb"]["id"] == "abc123"
    without = {}
    RememberWandbRun().on_save_checkpoint(SimpleNamespace(loggers=[TensorBoardLogger(str(tmp_path))]), None, without)
    assert without == {} and wandb_run_id(without) is None
    assert wandb_run_id({"sslzoo_wandb": "junk"}) is None


def test_a_resumed_run_can_continue_the_same_wandb_run(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    L.seed_everything(0)
    first = WandbLogger(offline=True, save_dir=str(tmp_path), project="sslzoo-test")
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=1, logger=first, callbacks=[RememberWandbRun()])
    try:
        trainer.fit(FixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS), datamodule=tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2))
        trainer.save_checkpoint(tmp_path / "last.ckpt")
        run_id = first.experiment.id
    finally:
        first.experiment.finish()
    saved = wandb_run_id(torch.load(tmp_path / "last.ckpt", weights_only=True))  # what the CLI reads on resume
    assert saved == run_id
    resumed = WandbLogger(offline=True, save_dir=str(tmp_path), project="sslzoo-test", id=saved, resume="allow")
    try:
        assert resumed.experiment.id == run_id
    finally:
        resumed.experiment.finish()
        wandb.teardown()
