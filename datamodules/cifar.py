"""CIFAR-10, CIFAR-100 and CIFAR-100's 20 superclasses (SCAN's CIFAR100-20)."""
from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
from torchvision import datasets

from . import info as infos
from .base import Pool, SSLDataModule
from .download import download_errors
from .sources import ArraySource
from .torchvision_files import ExistenceCheckMixin, require_files


class _CIFAR10(ExistenceCheckMixin, datasets.CIFAR10):
    def expected_files(self):
        return [name for name, _ in self.train_list + self.test_list] + [self.meta["filename"]]

    def _load_meta(self) -> None:
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            meta = pickle.load(f, encoding="latin1")
        self.classes = meta[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class _CIFAR100(_CIFAR10, datasets.CIFAR100):
    pass


class CIFAR10DataModule(SSLDataModule):
    """CIFAR-10 (torchvision's python pickles under `root/cifar-10-batches-py`)."""

    dataset_class = _CIFAR10
    dataset_info = infos.CIFAR10

    def __init__(self, root: str = "data", **kwargs):
        super().__init__(root=root, **kwargs)

    def download_data(self) -> None:
        cls = self.dataset_class
        with download_errors(self.dataset_info.name.upper(), cls.url, self.root):
            for train in (True, False):
                cls(str(self.root), train=train, download=True)

    def _meta(self) -> dict | None:
        """The small meta pickle with the class names, when it is there."""
        path = self.root / self.dataset_class.base_folder / self.dataset_class.meta["filename"]
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")

    def read_info(self):
        meta = self._meta()
        return self.dataset_info if meta is None else replace(self.dataset_info, classes=tuple(meta[self.dataset_class.meta["key"]]))

    def _read(self, train: bool):
        cls = self.dataset_class
        require_files(self.dataset_info.name.upper(), self.root / cls.base_folder, [*(n for n, _ in cls.train_list + cls.test_list), cls.meta["filename"]])
        return cls(str(self.root), train=train, download=False)

    def _targets(self, dataset, train: bool) -> np.ndarray:
        return np.asarray(dataset.targets)

    def _info(self, dataset):
        return replace(self.dataset_info, classes=tuple(dataset.classes))

    def load_pool(self) -> Pool:
        train, test = self._read(True), self._read(False)
        return Pool(
            info=self._info(train),
            train=ArraySource(train.data, self._targets(train, True)),
            test=ArraySource(test.data, self._targets(test, False)),
        )


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100; `superclasses=True` gives the 20 coarse classes (CIFAR100-20 of SCAN)."""

    dataset_class = _CIFAR100
    dataset_info = infos.CIFAR100

    def __init__(self, root: str = "data", superclasses: bool = False, **kwargs):
        super().__init__(root=root, **kwargs)
        self.superclasses = superclasses

    def split_settings(self) -> dict:
        return {**super().split_settings(), "superclasses": self.superclasses}

    def _targets(self, dataset, train: bool) -> np.ndarray:
        if not self.superclasses:
            return np.asarray(dataset.targets)
        files = dataset.train_list if train else dataset.test_list
        coarse = []
        for name, _ in files:
            with open(self.root / dataset.base_folder / name, "rb") as f:
                coarse.extend(pickle.load(f, encoding="latin1")["coarse_labels"])
        return np.asarray(coarse)

    def _info(self, dataset):
        if not self.superclasses:
            return super()._info(dataset)
        return replace(infos.CIFAR100_20, classes=tuple(self._meta()["coarse_label_names"]))

    def read_info(self):
        if not self.superclasses:
            return super().read_info()
        meta = self._meta()
        return infos.CIFAR100_20 if meta is None else replace(infos.CIFAR100_20, classes=tuple(meta["coarse_label_names"]))
