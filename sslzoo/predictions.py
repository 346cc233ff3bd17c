"""`PredictionWriter`: what `sslzoo predict` writes, one CSV row per image of the predict split
(and, on request, the class probabilities and backbone features in an .npz next to it)."""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from .callbacks import run_directory
from .errors import ConfigError, DataError

COLUMNS = ("index", "name", "label", "prediction", "confidence")
FEATURES_FLAG = "predict_features"  # read by SSLMethod.predict_step: also return the backbone features


def default_file_name(predict_split: str) -> str:
    """predictions_<split>.csv; for a folder of new images (`predict_split` a path), the folder's name."""
    name = re.sub(r"[^\w.-]+", "_", Path(str(predict_split)).expanduser().name) or "predict"
    return f"predictions_{name}.csv"


def merge_shards(shards: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every process's rows as one table sorted by dataset index; an index that several shards
    hold (a sampler that pads its last shard with repeats) is kept once."""
    keys = shards[0].keys()
    merged = {key: np.concatenate([shard[key] for shard in shards]) for key in keys}
    _, first = np.unique(merged["index"], return_index=True)  # sorted by index
    return {key: values[first] for key, values in merged.items()}


def batch_rows(prediction: dict, with_probabilities: bool, with_features: bool) -> dict[str, np.ndarray]:
    """The columns (and arrays) of one batch from `predict_step`'s {"logits", "idx", "y"[, "features"]}."""
    probabilities = prediction["logits"].detach().float().softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    y = prediction.get("y")
    rows = {
        "index": prediction["idx"].detach().cpu().long().numpy(),
        "label": (torch.full_like(predicted, -1) if y is None else y.detach()).cpu().long().numpy(),
        "prediction": predicted.cpu().numpy(),
        "confidence": confidence.cpu().double().numpy(),
    }
    if with_probabilities:
        rows["probabilities"] = probabilities.cpu().numpy()
    if with_features:
        rows["features"] = prediction["features"].detach().flatten(1).float().cpu().numpy()
    return rows


def write_table(path: Path, rows: dict[str, np.ndarray], names: list[str] | None) -> None:
    """The CSV: index, name (when the items have names), label (empty when unknown), prediction, confidence."""
    columns = [c for c in COLUMNS if c != "name" or names is not None]
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    with open(partial, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for index, label, predicted, confidence in zip(rows["index"], rows["label"], rows["prediction"], rows["confidence"]):
            name = [names[index]] if names is not None else []
            writer.writerow([int(index), *name, int(label) if label >= 0 else "", int(predicted), f"{confidence:.6f}"])
    os.replace(partial, path)  # a crash mid-write leaves no half file under the real name


def write_arrays(path: Path, rows: dict[str, np.ndarray]) -> None:
    """The wide arrays, row i belonging to dataset index `index[i]` (the CSV's row order)."""
    arrays = {key: rows[key] for key in ("index", "probabilities", "features") if key in rows}
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)


class PredictionWriter(BasePredictionWriter):
    """Writes the predictions of `predict` to `output` (default `<run dir>/predictions_<split>.csv`,
    split = the datamodule's `predict_split`): one row per image with its dataset index, its name
    (file path) when the datamodule gives names, its label (empty when unknown), the predicted class
    and the confidence (largest softmax probability). With `probabilities` and/or `features`, the
    class probabilities and the evaluated network's backbone features go to the .npz of the same
    name, with the same index order (a CSV is a poor place for wide arrays).

    Under DDP every process keeps its shard; rank 0 gathers them and writes one file sorted by index.
    """

    def __init__(self, output: str | None = None, probabilities: bool = False, features: bool = False):
        super().__init__(write_interval="batch")
        self.output, self.probabilities, self.features = output, probabilities, features
        self._shard: list[dict[str, np.ndarray]] = []
        self.written: Path | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._shard, self.written = [], None
        setattr(pl_module, FEATURES_FLAG, self.features)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx != 0:
            raise DataError("PredictionWriter writes the predictions of one predict loader; give predict a single dataloader")
        if not isinstance(prediction, dict) or not {"logits", "idx"} <= prediction.keys():
            raise DataError(
                f"{type(pl_module).__name__}.predict_step must return a dict with 'logits' and 'idx' for PredictionWriter; "
                "keep SSLMethod.predict_step or return the same keys"
            )
        if self.features and "features" not in prediction:
            raise DataError(f"{type(pl_module).__name__}.predict_step returned no 'features'; drop PredictionWriter's features option")
        self._shard.append(batch_rows(prediction, self.probabilities, self.features))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = self.csv_path(trainer)  # every process: the run directory is a collective
        shard = merge_shards(self._shard) if self._shard else None
        self._shard = []
        shards = self._gather(shard, trainer)
        if trainer.is_global_zero:
            self.written = self._write(path, [s for s in shards if s is not None], trainer)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        setattr(pl_module, FEATURES_FLAG, False)

    # ---- where and what -------------------------------------------------------------------
    def csv_path(self, trainer: L.Trainer) -> Path:
        split = getattr(trainer.datamodule, "predict_split", "test") if trainer.datamodule is not None else "test"
        path = Path(self.output) if self.output else run_directory(trainer) / default_file_name(split)
        if path.is_dir():
            raise ConfigError(f"PredictionWriter output {path} is a directory; give a file name such as {path / 'predictions.csv'}")
        return path

    @staticmethod
    def _gather(shard: dict | None, trainer: L.Trainer) -> list[dict | None]:
        """Every process's shard on rank 0 (a list of world_size entries there, [] elsewhere).
        Objects, not tensors: the shards have different lengths (the eval sampler does not pad)."""
        if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return [shard]
        shards = [None] * dist.get_world_size() if trainer.is_global_zero else None
        dist.gather_object(shard, shards, dst=0)
        return shards or []

    def _write(self, path: Path, shards: list[dict], trainer: L.Trainer) -> Path:
        if not shards:
            raise DataError("predict saw no images: the predict split is empty; check --data's predict split")
        rows = merge_shards(shards)
        names = predict_item_names(trainer)
        if names is not None and len(rows["index"]) and int(rows["index"].max()) >= len(names):
            raise DataError(f"predict gave index {int(rows['index'].max())} but the datamodule names {len(names)} items")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(path, rows, names)
        extra = ""
        if self.probabilities or self.features:
            arrays = path.with_suffix(".npz")
            write_arrays(arrays, rows)
            extra = f" and {', '.join(k for k in ('probabilities', 'features') if k in rows)} to {arrays}"
        rank_zero_info(f"sslzoo: wrote the predictions of {len(rows['index'])} images to {path}{extra}")
        return path


def predict_item_names(trainer: L.Trainer) -> list[str] | None:
    """The predict split's item names (file paths) from the datamodule, or None when it has none."""
    names = getattr(trainer.datamodule, "predict_item_names", lambda: None)() if trainer.datamodule is not None else None
    return list(names) if names is not None else None
