"""STL-10: 5k labeled train images (10 predefined folds of 1k), 100k unlabeled, 8k test."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from torchvision import datasets

from sslzoo.errors import ConfigError

from . import info as infos
from .base import Pool, SSLDataModule
from .download import download_errors
from .sources import UNKNOWN_LABEL, ArraySource, ConcatSource
from .torchvision_files import ExistenceCheckMixin, require_files

_FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin", "fold_indices.txt", "class_names.txt"]


class _STL10(ExistenceCheckMixin, datasets.STL10):
    def expected_files(self):
        return _FILES


class STL10DataModule(SSLDataModule):
    """STL-10. The training pool is train (indices 0..4999) followed by the
    100k unlabeled images (label -1). Labels come from the train split: a
    balanced sample of `num_labels`, one predefined fold (`fold=0..9`, 1000
    images each, the FixMatch protocol) or all 5000 (both None).
    `use_unlabeled_split=False` leaves the 100k unlabeled images out of the pool
    (SCAN pretrains on train + unlabeled but clusters on train only)."""

    def __init__(self, root: str = "data", fold: int | None = None, use_unlabeled_split: bool = True, **kwargs):
        super().__init__(root=root, **kwargs)
        if fold is not None and not 0 <= fold <= 9:
            raise ConfigError(f"STL-10 has folds 0..9, got fold={fold}; set fold to 0..9 or null")
        self.fold = fold
        self.use_unlabeled_split = use_unlabeled_split

    def split_settings(self) -> dict:
        return {**super().split_settings(), "fold": self.fold, "use_unlabeled_split": self.use_unlabeled_split}

    def download_data(self) -> None:
        with download_errors("STL-10", _STL10.url, self.root):
            _STL10(str(self.root), split="train", download=True)

    def _class_names_file(self):
        return self.root / _STL10.base_folder / "class_names.txt"

    def read_info(self):
        names = self._class_names_file()
        return replace(infos.STL10, classes=tuple(names.read_text().split())) if names.is_file() else infos.STL10

    def _read(self, split: str) -> ArraySource:
        data = _STL10(str(self.root), split=split, download=False)
        labels = data.labels if data.labels is not None else np.full(len(data.data), UNKNOWN_LABEL)
        return ArraySource(data.data, labels, channels_last=False)

    def _fold_indices(self) -> np.ndarray:
        lines = (self.root / _STL10.base_folder / "fold_indices.txt").read_text().splitlines()
        return np.asarray(lines[self.fold].split(), dtype=np.int64)

    def load_pool(self) -> Pool:
        require_files("STL-10", self.root / _STL10.base_folder, _FILES)
        train, test = self._read("train"), self._read("test")
        candidates = np.arange(len(train))
        pool_train = ConcatSource([train, self._read("unlabeled")]) if self.use_unlabeled_split else train
        names = self._class_names_file().read_text().split()
        return Pool(
            info=replace(infos.STL10, classes=tuple(names)),
            train=pool_train,
            test=test,
            labeled_candidates=candidates,
            fixed_labeled=self._fold_indices() if self.fold is not None else None,
            has_unknown_labels=self.use_unlabeled_split,
        )
