"""The SSL datamodule: a labeled and an unlabeled stream plus val/test."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader, rank_zero_warn
from torch.utils.data import DataLoader

from sslzoo.choices import check_choice
from sslzoo.errors import ConfigError, DataError, ResumeRefused

from .dataset import SSLDataset
from .fingerprint import FINGERPRINT_KEY, data_fingerprint, fingerprint_mismatch, fingerprints_in_checkpoint
from .info import DatasetInfo, info_disagreement
from .loaders import ResumableLoader, ignore_stop_signals
from .neighbour_pairs import NeighbourPairs
from .predict import check_predict_split, item_names, prediction_source
from .samplers import ShardedEvalSampler, StreamSampler, steps_for
from .sources import ImageSource, check_targets
from .splits import Split, sample_balanced_indices, sample_labeled_indices, targets_fingerprint
from .views import MultiView, build_views, check_view_specs
from .workers import default_num_workers

DEFAULT_VIEWS = {"labeled": ["weak"], "unlabeled": ["weak", "strong"]}


@dataclass
class Pool:
    """What a dataset provides: the training pool, the test set and its facts.

    `labeled_candidates` are the pool indices that may be labeled (e.g. STL-10's
    train split, not its unlabeled split); `fixed_labeled` is a predefined
    labeled set (an STL-10 fold, an ImageNet 1%/10% list) that replaces sampling.
    `has_unknown_labels`: training labels may be -1, images whose label is unknown
    (STL-10's unlabeled split, an array file's `unlabeled_label`); anywhere else a -1 is
    a mistake and refused.
    """

    info: DatasetInfo
    train: ImageSource
    test: ImageSource
    labeled_candidates: np.ndarray | None = None
    fixed_labeled: np.ndarray | None = None
    has_unknown_labels: bool = False


AugmentOn = Literal["workers", "device"]


class SSLDataModule(L.LightningDataModule):
    """Base datamodule for semi-supervised learning.

    Args:
        root: directory holding (or receiving) the dataset files.
        num_labels: total labeled images, balanced over classes; None labels all.
        split_seed: seed of the labeled (and validation) split; independent of
            the training seed, the rank and the world size.
        split_file: JSON split file; read and checked when it exists, written otherwise.
        num_val: images held out of the training pool (balanced) for validation;
            0 validates on the test set.
        batch_size: labeled images per step and process.
        unlabeled_ratio: mu, unlabeled images per labeled image in a step.
        unlabeled_batch_size: the unlabeled batch per process, when it is not a multiple
            of batch_size (Suave's CIFAR-100 recipe: 100 labeled + 128 unlabeled);
            overrides unlabeled_ratio.
        eval_batch_size: batch size of val/test loaders.
        num_workers: DataLoader worker processes per loader; None = this process's share
            of the CPUs (see `workers.default_num_workers`), 0 = load in the main process.
        download: download missing files (rank 0, in `prepare_data`).
        include_labeled_in_unlabeled: the unlabeled stream also holds the labeled
            images (FixMatch's protocol).
        steps_per_epoch: fixed number of steps per epoch (e.g. 1024 for the
            2^20-step protocol with max_epochs=1024); None = one pass over the
            unlabeled set (or the labeled set when there is no unlabeled stream).
        labeled_views / unlabeled_views: views per stream; None asks the method
            (its `views` attribute) and falls back to FixMatch's weak / weak+strong.
            An empty list drops that stream (not both).
        shuffle_seed: seed of the data order; None uses Lightning's global seed.
        predict_split: the images `predict` runs on: "test", "val", "labeled",
            "unlabeled" (the unlabeled pool, labels hidden), "train" (the whole pool) or
            the path of a folder of new images (see `predict.py`).
        augment_on: where the training views' pixel work runs: "workers" (per image, in the
            DataLoader workers) or "device" (per batch, on the training device, after the
            transfer). Either way each image's random draws are made by the workers from its
            own seed, so the two give the same images (uint8 views bit for bit, float views to
            float rounding) whatever the workers, processes or resumes. "device" feeds a GPU
            that 8-16 workers cannot keep busy (multi-crop, RandAugment at large batches) and
            sends uint8 images instead of float32. Evaluation views stay in the workers.

    A method with a non-empty `neighbour_table` (`.anchors` [M], `.neighbours`
    [M, K+1], pool indices; SCAN) gets anchor/neighbour pairs in its unlabeled
    stream (see `NeighbourPairs`); the table is read when the train loader is built.
    """

    def __init__(
        self,
        root: str = "data",
        num_labels: int | None = None,
        split_seed: int = 0,
        split_file: str | None = None,
        num_val: int = 0,
        batch_size: int = 64,
        unlabeled_ratio: int = 7,
        unlabeled_batch_size: int | None = None,
        eval_batch_size: int = 256,
        num_workers: int | None = None,
        download: bool = False,
        include_labeled_in_unlabeled: bool = True,
        steps_per_epoch: int | None = None,
        labeled_views: list | None = None,
        unlabeled_views: list | None = None,
        shuffle_seed: int | None = None,
        predict_split: str = "test",
        augment_on: AugmentOn = "workers",
    ):
        super().__init__()
        check_choice("augment_on", augment_on, AugmentOn)
        if batch_size <= 0 or unlabeled_ratio < 0 or eval_batch_size <= 0:
            raise ConfigError("batch_size and eval_batch_size must be positive and unlabeled_ratio non-negative")
        if unlabeled_batch_size is not None and unlabeled_batch_size < 0:
            raise ConfigError("unlabeled_batch_size must be non-negative (or None for batch_size x unlabeled_ratio)")
        if steps_per_epoch is not None and steps_per_epoch <= 0:
            raise ConfigError("steps_per_epoch must be positive (or None for one pass over the data)")
        if num_workers is not None and num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 (0 loads in the main process) or null for the default, got {num_workers}")
        for stream, specs in (("labeled_views", labeled_views), ("unlabeled_views", unlabeled_views)):
            if specs is not None:
                check_view_specs(specs, stream)
        check_predict_split(predict_split)
        self.root = Path(root).expanduser()
        self.num_labels = num_labels
        self.split_seed = split_seed
        self.split_file = split_file
        self.num_val = num_val
        self.batch_size = batch_size
        self.unlabeled_ratio = unlabeled_ratio
        self.unlabeled_batch_size = unlabeled_batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.download = download
        self.include_labeled_in_unlabeled = include_labeled_in_unlabeled
        self.steps_per_epoch = steps_per_epoch
        self.labeled_views = labeled_views
        self.unlabeled_views = unlabeled_views
        self.shuffle_seed = shuffle_seed
        self.predict_split = predict_split
        self.augment_on = augment_on
        self._device_views: dict[str, MultiView] = {}  # stream -> views finished after the transfer
        self.pool: Pool | None = None
        self._peeked_info: DatasetInfo | None = None
        self._preloaded_pool: Pool | None = None
        self._prediction_source: ImageSource | None = None
        self._fingerprint: dict | None = None
        self._checked_against_checkpoint = False

    # ---- what a concrete dataset implements -------------------------------
    def download_data(self) -> None:
        """Fetch the files into `root` (called on one process only)."""

    def load_pool(self) -> Pool:
        raise NotImplementedError

    def read_info(self) -> DatasetInfo:
        """The dataset's facts without reading the images or downloading (see `peek_info`).
        A subclass that cannot tell them cheaply keeps this default: one full load, kept for setup."""
        self._preloaded_pool = self.load_pool()
        return self._preloaded_pool.info

    def peek_info(self) -> DatasetInfo:
        """The dataset's facts (name, num_classes, channels, image_size, classes, fixed_size,
        hflip) before `setup()`, cheaply: no image is loaded and nothing downloaded, so a model
        can be sized from the data. Built-in datasets answer even when their files are absent;
        custom data (an array file, a folder) must be readable, or this raises DataError.
        mean/std are placeholders (0.5) where they need the pixels; after setup this is `info`."""
        if self.pool is not None:
            return self.pool.info
        if self._peeked_info is None:
            self._peeked_info = self.read_info()
        return self._peeked_info

    # ---- lifecycle -------------------------------------------------------
    def prepare_data(self) -> None:
        if self.download:
            self.download_data()

    def setup(self, stage: str | None = None) -> None:
        if self.pool is not None:
            return
        pool = self._preloaded_pool if self._preloaded_pool is not None else self.load_pool()
        self._preloaded_pool = None
        info = pool.info
        if self._peeked_info is not None and (change := info_disagreement(self._peeked_info, info)):
            raise DataError(
                f"{info.name}: the data read by setup() differs from what peek_info() found before ({change}); "
                "the files changed in between: let them settle and start again"
            )
        pool.train.targets = check_targets(
            pool.train.targets, info.num_classes, f"{info.name} training labels", allow_unknown=pool.has_unknown_labels
        )
        pool.test.targets = check_targets(pool.test.targets, info.num_classes, f"{info.name} test labels")
        self.pool = pool
        split = self._resolve_split(pool)
        self.labeled_indices, self.val_indices = split.labeled, split.val
        excluded = split.val if self.include_labeled_in_unlabeled else np.union1d(split.val, split.labeled)
        self.unlabeled_indices = np.setdiff1d(np.arange(len(pool.train)), excluded)

    @property
    def info(self) -> DatasetInfo:
        self._require_setup()
        return self.pool.info

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def _require_setup(self) -> None:
        if self.pool is None:  # a programming error, not the user's: stays a RuntimeError
            raise RuntimeError("call datamodule.setup() first (the Trainer does this for you)")

    # ---- splits ----------------------------------------------------------
    def _sample_split(self, pool: Pool) -> Split:
        targets = pool.train.targets
        candidates = pool.labeled_candidates
        if candidates is None:
            candidates = np.flatnonzero(targets >= 0)
        if pool.fixed_labeled is not None:
            if self.num_labels is not None and self.num_labels != len(pool.fixed_labeled):
                raise ConfigError(
                    f"num_labels={self.num_labels} conflicts with the predefined labeled set of "
                    f"{len(pool.fixed_labeled)} images of {pool.info.name}; set num_labels to null"
                )
            labeled = np.sort(np.asarray(pool.fixed_labeled, dtype=np.int64))
        elif self.num_labels is None:
            labeled = np.sort(candidates)
        else:
            labeled = sample_labeled_indices(
                targets, self.num_labels, self.split_seed, pool.info.num_classes, candidates, pool.info.classes
            )
        val = np.zeros(0, dtype=np.int64)
        if self.num_val:
            num_classes = pool.info.num_classes
            if self.num_val % num_classes:
                raise ConfigError(f"num_val={self.num_val} must be a multiple of the number of classes ({num_classes})")
            remaining = np.setdiff1d(candidates, labeled)
            # Salted so the validation draw is not the continuation of the labeled one.
            val = sample_balanced_indices(
                targets, self.num_val // num_classes, self.split_seed + 1_000_003, remaining, num_classes, "num_val", pool.info.classes
            )
        return Split(pool.info.name, len(targets), targets_fingerprint(targets), labeled, val, self.split_seed)

    def _resolve_split(self, pool: Pool) -> Split:
        name, targets = pool.info.name, pool.train.targets
        if self.split_file and Path(self.split_file).is_file():
            split = Split.load(self.split_file)
            split.check_against(name, targets, self.split_file)
            if self.num_labels is not None and len(split.labeled) != self.num_labels:
                raise ConfigError(
                    f"split file {self.split_file} holds {len(split.labeled)} labeled images but num_labels={self.num_labels}; "
                    "use a matching split file or num_labels"
                )
            return split
        split = self._sample_split(pool)
        if self.split_file and self._global_rank() == 0:
            split.save(self.split_file)
        return split

    def unlabeled_batch(self) -> int:
        """Unlabeled images per process and step. A method whose phases use their own batch
        (Boosted SSL's clustering epochs: 128) says so through `phase_unlabeled_batch()`."""
        phase_batch = getattr(self._lightning_module(), "phase_unlabeled_batch", None)
        phase_batch = phase_batch() if callable(phase_batch) else None
        if phase_batch is not None:
            return phase_batch
        if self.unlabeled_batch_size is not None:
            return self.unlabeled_batch_size
        return self.batch_size * self.unlabeled_ratio

    # ---- resume: the checkpoint's data must be this run's data ------------
    def split_settings(self) -> dict:
        """The options that decide the split, stored in checkpoints and compared on resume
        (subclasses add theirs, e.g. STL-10's fold). Paths are not settings: content is compared."""
        return {
            "num_labels": self.num_labels,
            "split_seed": self.split_seed,
            "num_val": self.num_val,
            "include_labeled_in_unlabeled": self.include_labeled_in_unlabeled,
        }

    def data_location(self) -> str:
        return str(self.root)

    def fingerprint(self) -> dict:
        """What identifies this run's data and split (see `fingerprint.py`); computed once."""
        self._require_setup()
        if self._fingerprint is None:
            pool = self.pool
            self._fingerprint = data_fingerprint(
                type(self).__qualname__, self.split_settings(), pool.info.name, pool.info.num_classes, pool.train, pool.test,
                self.root, self.labeled_indices, self.val_indices, self.unlabeled_indices, self.data_location(),
            )
        return self._fingerprint

    def state_dict(self) -> dict:
        return {FINGERPRINT_KEY: self.fingerprint()} if self.pool is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """Lightning calls this after `setup()` when it restores a checkpoint, on every rank."""
        self._checked_against_checkpoint = True
        if not self._fitting():
            return  # validate/test/predict may evaluate a checkpoint on any data
        saved = state.get(FINGERPRINT_KEY)
        if saved is None:
            self._warn_unchecked()
        else:
            self._refuse_other_data(saved)

    def _fitting(self) -> bool:
        return getattr(getattr(self.trainer, "state", None), "fn", None) == "fit"

    def _refuse_other_data(self, saved: dict) -> None:
        # Every rank computes the same fingerprint (the split ignores rank and world size), so
        # every rank raises here and none is left waiting at a barrier.
        problem = fingerprint_mismatch(saved, self.fingerprint(), f"checkpoint {self.trainer.ckpt_path}")
        if problem:
            raise ResumeRefused(problem)

    def _check_unfingerprinted_resume(self) -> None:
        """Lightning calls `load_state_dict` only when the checkpoint holds an entry under this
        class's name: without one the checkpoint is older than fingerprints, or was written
        with another datamodule class, which a fingerprint under another name reveals."""
        if self._checked_against_checkpoint or not self._fitting() or not getattr(self.trainer, "ckpt_path", None):
            return
        self._checked_against_checkpoint = True
        for saved in fingerprints_in_checkpoint(self.trainer.ckpt_path):
            self._refuse_other_data(saved)
        self._warn_unchecked()

    def _warn_unchecked(self) -> None:
        rank_zero_warn(
            f"checkpoint {self.trainer.ckpt_path} holds no data fingerprint for {type(self).__qualname__} (it predates "
            "them), so this resume cannot check that the dataset, num_labels and split_seed are the ones the run "
            "started with; make sure they are"
        )

    # ---- views -----------------------------------------------------------
    def stream_views(self) -> dict[str, list]:
        method_views = getattr(self._lightning_module(), "views", None) or {}
        chosen = {}
        for stream in ("labeled", "unlabeled"):
            explicit = getattr(self, f"{stream}_views")
            chosen[stream] = explicit if explicit is not None else method_views.get(stream, DEFAULT_VIEWS[stream])
        if self.unlabeled_batch() == 0:
            chosen["unlabeled"] = []
        if not chosen["labeled"] and not chosen["unlabeled"]:
            raise ConfigError(
                "both the labeled and the unlabeled views are empty (or the unlabeled batch is 0): there is nothing "
                "to train on; set labeled_views / unlabeled_views or a positive unlabeled batch"
            )
        return chosen

    def _method_neighbour_table(self):
        """The method's `neighbour_table` when it has at least one row, else None."""
        table = getattr(self._lightning_module(), "neighbour_table", None)
        return table if table is not None and len(table.anchors) > 0 else None

    # ---- distributed -----------------------------------------------------
    def _lightning_module(self):
        trainer = self.trainer
        return getattr(trainer, "lightning_module", None) if trainer is not None else None

    def _global_rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _shuffle_seed(self) -> int:
        if self.shuffle_seed is not None:
            return self.shuffle_seed
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    # ---- loaders ---------------------------------------------------------
    def resolved_num_workers(self) -> int:
        """`num_workers`, or by default this process's share of the CPUs (the local processes
        are LOCAL_WORLD_SIZE when a launcher sets it, else the trainer's devices)."""
        if self.num_workers is not None:
            return self.num_workers
        local = os.environ.get("LOCAL_WORLD_SIZE") or getattr(self.trainer, "num_devices", None) or 1
        return default_num_workers(int(local))

    def _loader_options(self) -> dict:
        workers = self.resolved_num_workers()
        return dict(num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                    worker_init_fn=ignore_stop_signals)

    def _batches_done(self) -> int:
        """Batches the model has consumed in the current epoch (for exact mid-epoch resume)."""
        trainer = self.trainer
        if trainer is None or not hasattr(trainer, "fit_loop"):
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _train_loader(self, dataset, batch_size: int, sampler: StreamSampler) -> ResumableLoader:
        return ResumableLoader(
            dataset, batch_size=batch_size, sampler=sampler, drop_last=True, batches_done=self._batches_done, **self._loader_options()
        )

    def steps_in_epoch(self, world_size: int | None = None) -> int:
        """Optimizer steps in one epoch for this world size."""
        self._require_setup()
        world = world_size or self._world_size()
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        if self.stream_views()["unlabeled"]:
            global_batch = self.unlabeled_batch() * world
            steps = steps_for(len(self.unlabeled_indices), global_batch)
            if steps == 0:
                raise ConfigError(
                    f"the unlabeled set ({len(self.unlabeled_indices)} images) is smaller than one global unlabeled "
                    f"batch ({global_batch}); lower the unlabeled batch or set steps_per_epoch"
                )
            return steps
        return max(1, steps_for(len(self.labeled_indices), self.batch_size * world, drop_last=False))

    def train_dataloader(self) -> CombinedLoader:
        self._require_setup()
        self._check_unfingerprinted_resume()
        rank, world = self._global_rank(), self._world_size()
        views, steps, seed = self.stream_views(), self.steps_in_epoch(world), self._shuffle_seed()
        streams = {}
        self._device_views = {}
        if views["labeled"]:
            labeled = SSLDataset(self.pool.train, self.labeled_indices, self._training_transform("labeled", views["labeled"]), "y")
            streams["labeled"] = self._train_loader(
                labeled, self.batch_size, StreamSampler(len(labeled), steps * self.batch_size, 2 * seed, rank, world)
            )
        table = self._method_neighbour_table()
        if table is not None and not views["unlabeled"]:
            raise ConfigError(
                "the method has a neighbour table but there is no unlabeled stream to pair it with "
                "(unlabeled_views is empty or the unlabeled batch is 0); give the unlabeled stream a view"
            )
        if views["unlabeled"]:
            unlabeled = SSLDataset(
                self.pool.train, self.unlabeled_indices, self._training_transform("unlabeled", views["unlabeled"]), "y_hidden"
            )
            if table is not None:
                unlabeled = NeighbourPairs(unlabeled, table.anchors, table.neighbours)
            batch = self.unlabeled_batch()
            sampler = StreamSampler(len(unlabeled), steps * batch, 2 * seed + 1, rank, world)
            streams["unlabeled"] = self._train_loader(unlabeled, batch, sampler)
        return CombinedLoader(streams, mode="min_size")

    def _training_transform(self, stream: str, specs):
        """The stream's views, or with `augment_on: device` their per-item half (`MultiView.plan`),
        the batch half being kept for `on_after_batch_transfer`."""
        views = build_views(specs, self.info)
        if self.augment_on != "device":
            return views
        if not self.info.fixed_size:
            views.expect_variable_size_input()
        self._device_views[stream] = views
        return views.plan

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """With `augment_on: device`, finish the training views of a batch on its device."""
        trainer = self.trainer
        if not self._device_views or trainer is None or not trainer.training or not isinstance(batch, dict):
            return batch
        for stream, views in self._device_views.items():
            items = batch.get(stream)
            if items is None:
                continue
            for key in ("x", "neighbour_x"):  # SCAN's pairs carry the neighbour's views too
                if key in items:
                    items[key] = views.finish_batch(items[key])
        return batch

    def _eval_loader(self, source: ImageSource, indices, views) -> DataLoader:
        dataset = SSLDataset(source, indices, build_views(views, self.info), "y")
        sampler = ShardedEvalSampler(len(dataset), self._global_rank(), self._world_size())
        return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=sampler, **self._loader_options())

    def val_dataloader(self) -> DataLoader:
        self._require_setup()
        if len(self.val_indices):
            return self._eval_loader(self.pool.train, self.val_indices, "eval")
        return self.test_dataloader()

    def test_dataloader(self) -> DataLoader:
        self._require_setup()
        return self._eval_loader(self.pool.test, np.arange(len(self.pool.test)), "eval")

    def _predict_items(self) -> ImageSource:
        self._require_setup()
        if self._prediction_source is None:
            self._prediction_source = prediction_source(
                self.predict_split, self.pool.train, self.pool.test, self.labeled_indices, self.val_indices,
                self.unlabeled_indices, self.info,
            )
        return self._prediction_source

    def predict_dataloader(self) -> DataLoader:
        """Eval-view batches of `predict_split`: "x", "idx" (the item's position in that split,
        see `predict_item_names`) and "y" (its label, -1 where the run does not know it)."""
        items = self._predict_items()
        return self._eval_loader(items, np.arange(len(items)), "eval")

    def predict_item_names(self) -> list[str] | None:
        """The file of each predicted item, by "idx", for data read from files; None for arrays."""
        return item_names(self._predict_items())

    def pool_dataloader(self, views="eval", include_val: bool = False) -> DataLoader:
        """The training pool (unlabeled indices) in fixed order and sharded, for offline steps
        such as SCAN's neighbour mining or a clustering pass. Items keep "idx"."""
        self._require_setup()
        indices = np.arange(len(self.pool.train)) if include_val else np.union1d(self.unlabeled_indices, self.labeled_indices)
        return self._eval_loader(self.pool.train, indices, views)

    def labeled_dataloader(self, views="eval") -> DataLoader:
        """The labeled images of the training pool in fixed order and sharded like `pool_dataloader`
        (e.g. to name clusters with a few labels). Items carry "y" and "idx"."""
        self._require_setup()
        return self._eval_loader(self.pool.train, self.labeled_indices, views)
