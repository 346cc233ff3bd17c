"""SVHN (torchvision's .mat files), optionally with the 531k `extra` images as unlabeled data."""
from __future__ import annotations

import numpy as np
from torchvision import datasets

from . import info as infos
from .base import Pool, SSLDataModule
from .download import download_errors
from .sources import ArraySource, ConcatSource
from .torchvision_files import ExistenceCheckMixin, require_files


class _SVHN(ExistenceCheckMixin, datasets.SVHN):
    def expected_files(self):
        return [self.filename]


class SVHNDataModule(SSLDataModule):
    """SVHN. Labels are sampled from `train` only; with `extra=True` the extra
    split joins the unlabeled stream (FixMatch's SVHN+extra protocol)."""

    def __init__(self, root: str = "data", extra: bool = False, **kwargs):
        super().__init__(root=root, **kwargs)
        self.extra = extra

    def split_settings(self) -> dict:
        return {**super().split_settings(), "extra": self.extra}

    def _splits(self):
        return ["train", "test"] + (["extra"] if self.extra else [])

    def download_data(self) -> None:
        for split in self._splits():
            with download_errors(f"SVHN {split}", _SVHN.split_list[split][0], self.root):
                _SVHN(str(self.root), split=split, download=True)

    def read_info(self):
        return infos.SVHN

    def _read(self, split: str) -> ArraySource:
        require_files("SVHN", self.root, [_SVHN.split_list[split][1]])
        data = _SVHN(str(self.root), split=split, download=False)
        return ArraySource(data.data, data.labels, channels_last=False)

    def load_pool(self) -> Pool:
        train, test = self._read("train"), self._read("test")
        candidates = np.arange(len(train))
        if self.extra:
            train = ConcatSource([train, self._read("extra")])
        return Pool(info=infos.SVHN, train=train, test=test, labeled_candidates=candidates)
