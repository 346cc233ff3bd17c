"""`PredictionWriter`: the CSV (and .npz) that `predict` writes, on one process and on two."""
import csv
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

import tiny
from sslzoo.errors import ConfigError, DataError
from sslzoo.methods import FixMatch
from sslzoo.predictions import PredictionWriter, default_file_name, merge_shards

BACKBONE, OPTIONS = tiny.TINY_BACKBONES["tiny_mlp"]
NUM_TEST = 15


def _method():
    L.seed_everything(0)
    return FixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS)


def _datamodule(tmp_path, **overrides):
    return tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, num_test=NUM_TEST), eval_batch_size=4, **overrides)


def _predict(tmp_path, writer, method=None, datamodule=None, **trainer_options):
    method, datamodule = method or _method(), datamodule or _datamodule(tmp_path)
    trainer = tiny.tiny_trainer(tmp_path, callbacks=[writer], **trainer_options)
    trainer.predict(method, datamodule=datamodule, return_predictions=False)
    return method, datamodule


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _by_hand(method, datamodule) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, labels and backbone features of the whole test set, in one batch."""
    datamodule.setup("predict")
    batches = list(datamodule.predict_dataloader())
    x, y = torch.cat([b["x"] for b in batches]), torch.cat([b["y"] for b in batches])
    idx = torch.cat([b["idx"] for b in batches])
    assert torch.equal(idx, torch.arange(NUM_TEST))
    with torch.no_grad():
        method.eval()
        return method.eval_logits(x), y, method.eval_features(x)


def test_one_row_per_image_with_label_prediction_and_confidence(tmp_path, caplog):
    with caplog.at_level("INFO"):
        method, datamodule = _predict(tmp_path, PredictionWriter())
    path = tmp_path / "predictions_test.csv"  # no logger: the run directory is default_root_dir
    rows = _rows(path)
    logits, y, _ = _by_hand(method, datamodule)
    probabilities = logits.softmax(dim=1)
    assert list(rows[0]) == ["index", "label", "prediction", "confidence"]  # ArrayDataModule names no files
    assert [int(r["index"]) for r in rows] == list(range(NUM_TEST))
    assert [int(r["label"]) for r in rows] == y.tolist()
    assert [int(r["prediction"]) for r in rows] == probabilities.argmax(dim=1).tolist()
    assert np.allclose([float(r["confidence"]) for r in rows], probabilities.max(dim=1).values.numpy(), atol=1e-6)
    assert f"wrote the predictions of {NUM_TEST} images to {path}" in caplog.text
    assert not (tmp_path / "predictions_test.npz").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert method.predict_features is False  # the flag does not outlive the predict run


def test_probabilities_and_features_go_to_the_npz_in_the_csv_order(tmp_path):
    output = tmp_path / "out" / "mine.csv"
    method, datamodule = _predict(tmp_path, PredictionWriter(output=str(output), probabilities=True, features=True))
    arrays = np.load(tmp_path / "out" / "mine.npz")
    logits, _, features = _by_hand(method, datamodule)
    assert np.array_equal(arrays["index"], [int(r["index"]) for r in _rows(output)])
    assert np.allclose(arrays["probabilities"], logits.softmax(dim=1).numpy(), atol=1e-6)
    assert np.allclose(arrays["features"], features.numpy(), atol=1e-6) and arrays["features"].shape == (NUM_TEST, 16)


def test_unknown_labels_are_empty_and_names_are_written(tmp_path, monkeypatch):
    datamodule = _datamodule(tmp_path, predict_split="unlabeled")  # the pool, its labels hidden (-1)
    names = [f"images/{i:03d}.png" for i in range(64)]
    monkeypatch.setattr(datamodule, "predict_item_names", lambda: names)  # as a datamodule of files gives them
    _predict(tmp_path, PredictionWriter(), datamodule=datamodule)
    rows = _rows(tmp_path / "predictions_unlabeled.csv")
    assert list(rows[0]) == ["index", "name", "label", "prediction", "confidence"]
    assert [r["name"] for r in rows] == names and {r["label"] for r in rows} == {""}


def test_a_folder_split_names_the_file_after_the_folder():
    assert default_file_name("test") == "predictions_test.csv"
    assert default_file_name("~/photos/new batch/") == "predictions_new_batch.csv"


def test_default_output_is_in_the_logger_version_folder(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    _predict(tmp_path, PredictionWriter(), logger=logger)
    assert (Path(logger.log_dir) / "predictions_test.csv").is_file()


def test_shards_merge_sorted_by_index_without_repeats():
    first = {"index": np.array([4, 0, 2]), "prediction": np.array([40, 0, 20])}
    second = {"index": np.array([3, 1, 4]), "prediction": np.array([30, 10, 40])}  # 4 again: a padded shard
    merged = merge_shards([first, second])
    assert merged["index"].tolist() == [0, 1, 2, 3, 4] and merged["prediction"].tolist() == [0, 10, 20, 30, 40]


def test_mistakes_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="is a directory; give a file name"):
        _predict(tmp_path, PredictionWriter(output=str(tmp_path)))

    class NoIndex(FixMatch):
        def predict_step(self, batch, batch_idx):
            return self.eval_logits(batch["x"])

    L.seed_everything(0)
    method = NoIndex(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS)
    with pytest.raises(DataError, match="must return a dict with 'logits' and 'idx'"):
        _predict(tmp_path, PredictionWriter(), method=method)


@pytest.mark.slow
def test_two_processes_write_one_file_of_every_image(tmp_path):
    writer = PredictionWriter(probabilities=True)
    _predict(tmp_path / "two", writer, datamodule=_datamodule(tmp_path), devices=2, strategy="ddp_spawn", deterministic=False)
    _predict(tmp_path / "one", PredictionWriter(probabilities=True), datamodule=_datamodule(tmp_path))
    two, one = _rows(tmp_path / "two" / "predictions_test.csv"), _rows(tmp_path / "one" / "predictions_test.csv")
    assert [int(r["index"]) for r in two] == list(range(NUM_TEST))  # shards of 8 and 7, merged in order
    assert [(r["label"], r["prediction"]) for r in two] == [(r["label"], r["prediction"]) for r in one]
    assert np.allclose([float(r["confidence"]) for r in two], [float(r["confidence"]) for r in one], atol=1e-6)
    assert np.allclose(np.load(tmp_path / "two" / "predictions_test.npz")["probabilities"], np.load(tmp_path / "one" / "predictions_test.npz")["probabilities"], atol=1e-6)
