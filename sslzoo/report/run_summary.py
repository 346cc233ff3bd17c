"""RunSummary: one JSON file per run version with what a results table needs."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from ..callbacks import run_directory
from ..methods.clustering_eval import ClusterMethod
from .records import update_best_last
from .summary_file import SUMMARY_FILE, SUMMARY_FORMAT


# Evaluation metrics worth a results table; all are "higher is better", so best = max.
TRACKED_METRICS = (
    "acc",
    "acc_top5",
    "balanced_acc",
    "cluster_acc",
    "cluster_acc_many_to_one",
    "cluster_acc_top5",
    "named_acc",
    "nmi",
    "ari",
)


def val_split_of(datamodule) -> str | None:
    """"held-out" when validation uses images held out of the training pool (num_val), "test"
    when it is the test set (then "best" is selected on the test set), None when unknown."""
    if datamodule is None or not hasattr(datamodule, "num_val"):
        return None
    return "held-out" if datamodule.num_val else "test"


def logged_values(metrics: dict, prefix: str) -> dict[str, float]:
    """The tracked metrics among Lightning's `callback_metrics` under `prefix` ("val/", "test/")."""
    return {name: float(metrics[prefix + name]) for name in TRACKED_METRICS if prefix + name in metrics}


def labels_of(datamodule, method: L.LightningModule) -> str:
    """What the run's labels are called in a table: the label subset ("1percent"), the number of
    labels, "none" for clustering methods (SCAN: no labels in training), else the size of the
    labeled set (STL-10's predefined folds)."""
    if getattr(datamodule, "label_subset", None):
        return str(datamodule.label_subset)
    if getattr(datamodule, "num_labels", None) is not None:
        return str(datamodule.num_labels)
    if isinstance(method, ClusterMethod):
        return "none"
    labeled = getattr(datamodule, "labeled_indices", None)
    return str(len(labeled)) if labeled is not None else "unknown"


def dataset_of(datamodule) -> str:
    pool = getattr(datamodule, "pool", None)
    info = pool.info if pool is not None else getattr(datamodule, "dataset_info", None)
    return info.name if info is not None else type(datamodule).__name__


class RunSummary(L.Callback):
    """Keeps best and last of the tracked validation metrics, the test metrics, steps, epochs and
    the wall time of fit, and writes them with the run's identity to `run_summary.json` (rank 0)
    after every validation and at the end of fit, validate and test.

    Its state goes into checkpoints, so a run resumed with `--ckpt_path last` keeps its best values
    and continues the wall-time count (time after the last checkpoint of a stopped run is not
    counted: that work was lost). Testing a checkpoint restores the state saved in it.

    `config_files` are the --config files given to the CLI (set by `sslzoo.cli`).
    """

    def __init__(self, config_files: list[str] | None = None):
        self.config_files = list(config_files or [])
        self.val: dict[str, dict] = {}
        self.evaluated: dict[str, dict[str, float]] = {}  # "test" / "validate" -> last values
        self.fit_seconds_before = 0.0
        self._fit_started: float | None = None
        self._loaded_progress: tuple[int, int] | None = None  # (step, epoch) of a checkpoint tested or validated

    # ---- state ----------------------------------------------------------
    def fit_seconds(self) -> float:
        running = time.monotonic() - self._fit_started if self._fit_started is not None else 0.0
        return self.fit_seconds_before + running

    def state_dict(self) -> dict:
        return {"val": self.val, "fit_seconds": self.fit_seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.val = dict(state_dict.get("val", {}))
        self.fit_seconds_before = float(state_dict.get("fit_seconds", 0.0))

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._loaded_progress = (int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0)))

    def progress(self, trainer: L.Trainer) -> tuple[int, int]:
        """(global step, epoch) of the weights: a test of a checkpoint reports the checkpoint's, not 0."""
        if trainer.state.fn != TrainerFn.FITTING and self._loaded_progress is not None:
            return self._loaded_progress
        return trainer.global_step, trainer.current_epoch

    # ---- hooks ----------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING:
            self._fit_started = time.monotonic()  # from the method's set-up on (SCAN's neighbour mining counts)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_seconds_before, self._fit_started = self.fit_seconds(), None
        self.write(trainer, pl_module, finished=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = logged_values(trainer.callback_metrics, "val/")
        if trainer.state.fn == TrainerFn.FITTING:
            for name, value in values.items():
                self.val[name] = update_best_last(self.val.get(name), value, trainer.global_step)
        else:
            self.evaluated["validate"] = values
        self.write(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.evaluated["test"] = logged_values(trainer.callback_metrics, "test/")
        self.write(trainer, pl_module)

    # ---- output ---------------------------------------------------------
    def summary(self, trainer: L.Trainer, pl_module: L.LightningModule, log_dir: Path, finished: bool = False) -> dict:
        datamodule = trainer.datamodule
        root = Path(trainer.default_root_dir)
        step, epoch = self.progress(trainer)
        try:
            log_dir_in_run = log_dir.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            log_dir_in_run = None
        summary = {
            "format": SUMMARY_FORMAT,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "stage": TrainerFn(trainer.state.fn).value,
            "finished": finished,
            "config_files": self.config_files,
            "method": type(pl_module).__name__,
            "method_class": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "backbone": getattr(pl_module.hparams, "backbone", None),
            "datamodule": type(datamodule).__name__ if datamodule is not None else None,
            "dataset": dataset_of(datamodule) if datamodule is not None else None,
            "labels": labels_of(datamodule, pl_module) if datamodule is not None else None,
            "num_labels": getattr(datamodule, "num_labels", None),
            "val_split": val_split_of(datamodule),
            "run_dir": str(root),
            "log_dir_in_run": log_dir_in_run,
            "global_step": step,
            "epoch": epoch,
            "fit_seconds": round(self.fit_seconds(), 3),
            "val": self.val,
        }
        for stage, values in self.evaluated.items():
            summary[stage] = values
        if self.evaluated:
            summary["ckpt_path"] = str(trainer.ckpt_path) if trainer.ckpt_path else None
        return summary

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, finished: bool = False) -> Path | None:
        log_dir = run_directory(trainer)
        if not trainer.is_global_zero:
            return None
        path = log_dir / SUMMARY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.summary(trainer, pl_module, log_dir, finished), indent=2) + "\n")
        return path
