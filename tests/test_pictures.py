"""Validation pictures (confusion matrix, t-SNE embedding, pseudo-label curves), their output to
PNG/W&B/TensorBoard, and the git commit given to the loggers."""
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import wandb
from matplotlib.colors import to_rgba

import tiny
import wandb_records
from sslzoo.functional.cluster_metrics import cluster_to_class_map
from sslzoo.methods import FixMatch, SCANSelfLabel
from sslzoo.pictures import (
    MetricHistory,
    ValidationPictures,
    confusion_table,
    draw_confusion,
    draw_curves,
    draw_embedding,
    subset_positions,
    tsne_2d,
)
from sslzoo.pictures import callback as pictures_callback
from sslzoo.pictures.callback import evaluated_network_name, with_gaps
from sslzoo.pictures.drawing import class_colours
from sslzoo.source_version import LogSourceVersion, source_version

REPO = Path(__file__).resolve().parents[1]
BACKBONE, OPTIONS = tiny.TINY_BACKBONES["tiny_mlp"]
PICTURES = ("confusion_matrix", "embedding", "pseudo_labels")


# ---- drawing ------------------------------------------------------------------------------------
def test_confusion_picture_shows_the_counts_names_and_accuracy():
    counts = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    figure = draw_confusion(counts, ("cat", "dog", "fox"), "val")
    axes = figure.axes[0]
    assert np.array_equal(axes.images[0].get_array(), counts)
    assert [t.get_text() for t in axes.get_xticklabels()] == ["cat", "dog", "fox"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["cat", "dog", "fox"]
    assert [t.get_text() for t in axes.texts] == [str(v) for v in counts.ravel()]  # row-major: true class rows
    assert "75.0% of 16 images" in axes.get_title()  # trace 12 of 16
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted class", "true class")
    with pytest.raises(ValueError, match="square"):
        draw_confusion(np.zeros((3, 2)))


def test_confusion_picture_of_many_classes_has_no_cell_numbers():
    counts = np.eye(30, dtype=int)
    axes = draw_confusion(counts).axes[0]
    assert np.array_equal(axes.images[0].get_array(), counts) and not axes.texts


def test_confusion_table_of_a_classifier_puts_true_classes_in_rows():
    counts = torch.tensor([[3, 1], [0, 2]])  # counts[predicted, true]
    table, xlabel = confusion_table(counts, outputs_are_clusters=False)
    assert table.tolist() == [[3, 0], [1, 2]] and xlabel == "predicted class"


def test_confusion_table_maps_clusters_like_the_clustering_accuracy():
    # 3 clusters, 3 classes, permuted: cluster 0 holds class 2, cluster 1 class 0, cluster 2 class 1.
    counts = torch.tensor([[1, 0, 6], [5, 1, 0], [0, 4, 1]])
    table, xlabel = confusion_table(counts, outputs_are_clusters=True)
    assert table.tolist() == [[5, 0, 1], [1, 4, 0], [0, 1, 6]]  # rows: true class; columns: the cluster's class
    assert "Hungarian" in xlabel
    # Overclustering: 4 clusters -> majority classes [0, 1, 1, 0]; both class-1 clusters add up.
    counts = torch.tensor([[4, 1], [0, 3], [1, 2], [2, 0]])
    table, xlabel = confusion_table(counts, outputs_are_clusters=True)
    assert table.tolist() == [[6, 1], [1, 5]] and "many-to-one" in xlabel
    assert np.trace(table) == int(counts[torch.arange(4), cluster_to_class_map(counts)].sum())


def test_confusion_picture_normalised_by_row_shows_fractions_of_each_true_class():
    counts = np.array([[6, 2], [0, 0]])  # an empty class stays 0, not NaN
    axes = draw_confusion(counts, normalise=True).axes[0]
    assert np.allclose(axes.images[0].get_array(), [[0.75, 0.25], [0, 0]]) and axes.images[0].get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in axes.texts] == ["0.75", "0.25", "0.00", "0.00"]
    assert "75.0% of 8 images" in axes.get_title()  # the accuracy is still of the counts


def test_embedding_stars_are_small_transparent_and_beneath_the_validation_points():
    points = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 1, 2, 0, 1, 2])
    labeled = np.array([False, False, False, False, True, True])
    axes = draw_embedding(points, labels, labeled, ("a", "b", "c")).axes[0]
    stars, rest = axes.collections
    assert np.array_equal(rest.get_offsets(), points[:4]) and np.array_equal(stars.get_offsets(), points[4:])
    assert np.allclose(stars.get_facecolors()[:, :3], class_colours(3)[[1, 2], :3])
    assert np.allclose(rest.get_facecolors()[:, :3], class_colours(3)[[0, 1, 2, 0], :3])
    assert np.allclose(stars.get_edgecolors()[:, :3], to_rgba("black")[:3])
    assert stars.get_zorder() < rest.get_zorder() and stars.get_alpha() < 1
    assert stars.get_sizes()[0] <= 30  # was 90: 500 of them hid the validation points
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["a", "b", "c", "labeled"]
    assert ValidationPictures().embedding_labeled_points == 200


def test_curves_picture_plots_each_series_against_the_step_with_the_legend_off_the_lines():
    series = {
        "train/mask_rate": (np.array([1, 2, 5]), np.array([0.0, 0.5, 0.9])),
        "train/pseudo_acc_masked": (np.array([1, 2, 5]), np.array([np.nan, 0.4, 0.8])),  # nothing confident at step 1
    }
    figure = draw_curves(series)
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    for name, (steps, values) in series.items():
        assert np.array_equal(lines[name].get_xdata(), steps) and np.array_equal(lines[name].get_ydata(), values, equal_nan=True)
    assert axes.get_xlabel() == "global step"
    (legend,) = figure.legends
    figure.draw_without_rendering()
    plot, box = axes.get_window_extent(), legend.get_window_extent()
    assert box.y1 <= plot.y0 and not box.overlaps(plot)  # below the plot, not over the curves
    assert [t.get_text() for t in legend.get_texts()] == list(series)


def test_masked_accuracy_is_a_gap_where_nothing_was_confident():
    assert np.isnan(with_gaps({"train/pseudo_acc_masked": 0.0, "train/mask_rate": 0.0}, 0.0)["train/pseudo_acc_masked"])
    assert with_gaps({"train/pseudo_acc_masked": 0.0}, 0.25) == {"train/pseudo_acc_masked": 0.0}  # confident and wrong
    assert with_gaps({"train/pseudo_acc_masked": 0.5}, None) == {"train/pseudo_acc_masked": 0.5}  # no mask rate logged


def test_the_picture_names_the_evaluated_network():
    with_ema, without_ema = _fixmatch(), FixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, ema_decay=None)
    assert evaluated_network_name(with_ema) == "EMA" and evaluated_network_name(without_ema) == "online network"

    class Named(FixMatch):
        eval_network_name = "teacher"

    assert evaluated_network_name(Named(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS)) == "teacher"
    from sslzoo.methods import MeanTeacher

    assert evaluated_network_name(MeanTeacher(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, ema_decay=0.99)) == "teacher (EMA)"


# ---- embedding ----------------------------------------------------------------------------------
def test_tsne_is_deterministic_and_keeps_separated_classes_apart():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = np.eye(3)[labels] * 10 + rng.normal(size=(60, 3)) * 0.5
    points = tsne_2d(features, seed=0)
    assert points.shape == (60, 2) and np.array_equal(points, tsne_2d(features, seed=0))
    distances = ((points[:, None] - points[None]) ** 2).sum(-1) + np.eye(60) * 1e9
    assert (labels[distances.argmin(axis=1)] == labels).all()  # every point's 2-D neighbour is of its class


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_tsne_of_tiny_and_collapsed_sets(n):
    assert tsne_2d(np.random.default_rng(0).normal(size=(n, 4))).shape == (n, 2)
    assert np.array_equal(tsne_2d(np.ones((n, 4))), np.zeros((n, 2)))  # scikit-learn would crash on these


def test_subset_positions_are_a_fixed_sorted_spread():
    positions = subset_positions(1000, 100, seed=3)
    assert np.array_equal(positions, subset_positions(1000, 100, seed=3)) and np.array_equal(positions, np.unique(positions))
    assert len(positions) == 100 and positions.max() >= 900 and positions.min() < 100  # not the first 100 of a class-sorted set
    assert np.array_equal(subset_positions(7, 100), np.arange(7))


# ---- curve history --------------------------------------------------------------------------------
def test_metric_history_survives_a_checkpoint_round_trip(tmp_path):
    history = MetricHistory()
    history.record(10, {"train/mask_rate": 0.25, "train/pseudo_acc_all": 0.5})
    history.record(20, {"train/mask_rate": 0.75})
    with pytest.raises(ValueError, match="not after"):
        history.record(20, {"train/mask_rate": 0.1})
    callback = ValidationPictures()
    callback.history, callback.validations = history, 4
    torch.save({"callback": callback.state_dict()}, tmp_path / "state.pt")
    restored = ValidationPictures()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True)["callback"])
    assert restored.history.points == {"train/mask_rate": [(10, 0.25), (20, 0.75)], "train/pseudo_acc_all": [(10, 0.5)]}
    assert restored.validations == 4
    restored.history.forget_after(15)
    assert restored.history.points == {"train/mask_rate": [(10, 0.25)], "train/pseudo_acc_all": [(10, 0.5)]}


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="every_n_validations"):
        ValidationPictures(every_n_validations=0)
    with pytest.raises(ValueError, match="embedding_points"):
        ValidationPictures(embedding_points=-1)


# ---- git commit -----------------------------------------------------------------------------------
def test_source_version_is_the_checkout_commit_or_unknown(tmp_path, monkeypatch):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    version = source_version()
    if head.returncode == 0:
        assert version["git/commit"] == head.stdout.strip() and isinstance(version["git/dirty"], bool)
    assert source_version(tmp_path) == {"git/commit": "unknown", "git/dirty": "unknown"}  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git binary at all
    assert source_version() == {"git/commit": "unknown", "git/dirty": "unknown"}


# ---- end to end -------------------------------------------------------------------------------------
def _fixmatch():
    return FixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS, threshold=0.5, ema_decay=0.9)


class DrawnTables(list):
    """The tables the confusion picture drew, and their titles."""

    titles: list


def _spy_on_confusion(monkeypatch) -> DrawnTables:
    tables = DrawnTables()
    tables.titles = []

    def spy(table, class_names=(), title="", **kwargs):
        tables.append(np.array(table))
        tables.titles.append(title)
        return draw_confusion(table, class_names, title, **kwargs)

    monkeypatch.setattr(pictures_callback, "draw_confusion", spy)
    return tables


def test_fit_writes_pictures_to_the_run_directory_wandb_and_tensorboard(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    tables = _spy_on_confusion(monkeypatch)
    L.seed_everything(0)
    method, datamodule = _fixmatch(), tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3)
    tensorboard = TensorBoardLogger(str(tmp_path), name="tb")
    wandb_logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="sslzoo-test")
    pictures = ValidationPictures(embedding_every_n_validations=2)
    trainer = tiny.tiny_trainer(
        tmp_path, max_epochs=3, limit_val_batches=None, log_every_n_steps=1, logger=[tensorboard, wandb_logger], callbacks=[pictures, LogSourceVersion()]
    )
    try:
        trainer.fit(method, datamodule=datamodule)
    finally:
        wandb_logger.experiment.finish()
        wandb.teardown()  # finish() can return before W&B's service process has flushed the run file; this waits for it

    # PNGs: confusion and curves at every validation (steps 3, 6, 9), the embedding at the 1st and 3rd.
    written = sorted(p.name for p in (Path(trainer.log_dir) / "pictures").iterdir())
    expected = [f"{name}_step{step:08d}.png" for name in PICTURES for step in (3, 6, 9) if name != "embedding" or step != 6]
    assert written == sorted(expected)
    # The confusion picture is the whole validation set, counted from validation_step's EMA logits.
    assert len(tables) == 3 and tables[-1].sum() == 16
    assert np.trace(tables[-1]) / 16 == pytest.approx(float(trainer.callback_metrics["val/acc"]))
    assert tables.titles[-1] == "EMA, validation, step 9"
    # The curve has the points the loggers got (log_every_n_steps=1: every step).
    assert [s for s, _ in pictures.history.points["train/mask_rate"]] == list(range(1, 10))
    # ... except a masked accuracy where no pseudo-label was confident: a gap, not a 0.
    mask_rates, accuracies = (dict(pictures.history.points[name]) for name in ("train/mask_rate", "train/pseudo_acc_masked"))
    assert all(np.isnan(accuracies[step]) == (rate == 0) for step, rate in mask_rates.items())

    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    media = {p.parent.name + "/" + p.name.rsplit("_", 2)[0] for p in (run_dir / "files" / "media" / "images").rglob("*.png")}
    assert media == {f"pictures/{name}" for name in PICTURES}
    run_file = next(run_dir.glob("run-*.wandb"))
    config = wandb_records.config(run_file)
    assert config["git/commit"] == source_version()["git/commit"] and "git/dirty" in config
    assert {"pictures/confusion_matrix/_type", "train/mask_rate"} <= wandb_records.history_keys(run_file)

    events = EventAccumulator(str(tensorboard.log_dir), size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["images"]) == {f"pictures/{name}" for name in PICTURES}
    assert [e.step for e in events.Images("pictures/confusion_matrix")] == [3, 6, 9]


def test_resumed_run_draws_the_whole_curve(tmp_path):
    def fit(max_epochs, ckpt_path=None):
        L.seed_everything(0)
        pictures = ValidationPictures(embedding=False, record_every_n_steps=2)
        trainer = tiny.tiny_trainer(tmp_path, max_epochs=max_epochs, limit_val_batches=None, callbacks=[pictures], num_sanity_val_steps=0)
        trainer.fit(_fixmatch(), datamodule=tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=3), ckpt_path=ckpt_path)
        return trainer, pictures

    first, _ = fit(2)
    first.save_checkpoint(tmp_path / "last.ckpt")
    _, resumed = fit(4, str(tmp_path / "last.ckpt"))
    assert [s for s, _ in resumed.history.points["train/pseudo_acc_masked"]] == [2, 4, 6, 8, 10, 12]
    assert resumed.validations == 4
    assert (tmp_path / "pictures" / "pseudo_labels_step00000012.png").is_file()  # no logger: default_root_dir


def test_clustering_confusion_is_the_mapped_table_of_the_cluster_accuracy(tmp_path, monkeypatch):
    tables = _spy_on_confusion(monkeypatch)
    L.seed_everything(0)
    method = SCANSelfLabel(num_classes=4, num_clusters=6, backbone=BACKBONE, backbone_options=OPTIONS, threshold=0.0)
    datamodule = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2, unlabeled_batch_size=8)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=None, callbacks=[ValidationPictures(embedding=False)], num_sanity_val_steps=0)
    trainer.fit(method, datamodule=datamodule)
    assert tables[-1].shape == (4, 4) and tables[-1].sum() == 16
    assert np.trace(tables[-1]) / 16 == pytest.approx(float(trainer.callback_metrics["val/cluster_acc_many_to_one"]))


def test_a_method_without_backbone_features_loses_only_the_embedding(tmp_path):
    class NoBackbone(FixMatch):
        def eval_features(self, x):
            raise NotImplementedError("no features here")

    L.seed_everything(0)
    method = NoBackbone(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS)
    pictures = ValidationPictures(record_every_n_steps=1)
    trainer = tiny.tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=None, callbacks=[pictures], num_sanity_val_steps=0)
    with pytest.warns(UserWarning, match="no features here"):
        trainer.fit(method, datamodule=tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2))
    assert sorted(p.name.split("_step")[0] for p in (tmp_path / "pictures").iterdir()) == ["confusion_matrix", "pseudo_labels"]
    assert pictures.embedding is False


def test_wandb_config_fragment_gives_an_offline_wandb_logger(tmp_path):
    from lightning.pytorch.loggers import WandbLogger

    from sslzoo.cli import build_cli

    args = [
        "--model", "FixMatch", "--model.num_classes", "4", "--model.backbone", "tiny_mlp",
        "--data", "ArrayDataModule", "--data.path", str(tiny.tiny_npz(tmp_path)), "--data.num_workers", "0",
        "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
        "--config", str(REPO / "experiments" / "loggers" / "wandb.yaml"), "--trainer.logger.init_args.save_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    cli = build_cli(args, run=False)
    (logger,) = cli.trainer.loggers
    assert isinstance(logger, WandbLogger) and logger._offline and logger._wandb_init["project"] == "sslzoo"
    assert cli.trainer.log_dir == str(tmp_path / "run")  # where the pictures go


class CountingPictures(ValidationPictures):
    """Writes the number of images in each confusion picture next to it (a spawned process
    cannot report back through a monkeypatch)."""

    def _confusion_figure(self, counts, pl_module, class_names, step):
        path = Path(pl_module.trainer.default_root_dir) / f"confusion_total_{pl_module.global_rank}_{step}.txt"
        path.write_text(str(int(counts.sum())))
        return super()._confusion_figure(counts, pl_module, class_names, step)


def test_two_processes_draw_once_from_the_whole_validation_set(tmp_path):
    L.seed_everything(0)
    method = FixMatch(num_classes=4, backbone=BACKBONE, backbone_options=OPTIONS)
    datamodule = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2, batch_size=2)
    trainer = tiny.tiny_trainer(
        tmp_path, max_epochs=1, devices=2, strategy="ddp_spawn", deterministic=False, limit_val_batches=None,
        num_sanity_val_steps=0, callbacks=[CountingPictures(record_every_n_steps=1)],
    )  # fmt: skip
    trainer.fit(method, datamodule=datamodule)
    assert (tmp_path / "confusion_total_0_2.txt").read_text() == "16"  # 8 validation images per process, summed
    assert not (tmp_path / "confusion_total_1_2.txt").exists()  # only rank 0 draws
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == [f"{name}_step00000002.png" for name in PICTURES]
