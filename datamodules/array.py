"""Custom data from one `.npz` file: x_train, y_train, x_test, y_test (uint8 NHWC) [, classes]."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sslzoo.errors import DataError

from .array_labels import resolve_array_labels
from .base import Pool, SSLDataModule
from .info import DatasetInfo
from .npz import load_npz_array, npz_headers
from .sources import ArraySource

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
HOW_TO_WRITE = "x_train=..., y_train=..., x_test=..., y_test=... [, classes=...]"
PLACEHOLDER_STAT = 0.5  # mean/std before the pixels are read (peek_info)


def _check_images(name: str, shape: tuple[int, ...], dtype: np.dtype, path: Path) -> None:
    if dtype != np.uint8:
        raise DataError(f"{path}: {name} has dtype {dtype}; images must be uint8 in [0, 255] (convert with x.astype(np.uint8) after scaling)")
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise DataError(f"{path}: {name} has shape {shape}; images must be (N, H, W, C) with C = 1 or 3, channels last")


def _check_labels(name: str, y: np.ndarray, n: int, path: Path) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {name} must be {n} integer class ids (shape ({n},)), got {y.dtype} {y.shape}")
    return y


@dataclass
class _Facts:
    info: DatasetInfo  # mean/std are placeholders unless given
    y_train: np.ndarray
    y_test: np.ndarray


class ArrayDataModule(SSLDataModule):
    """In-memory dataset from an array file; mean/std are computed from x_train unless given.

    Labels are class ids 0..C-1 (see `array_labels`). `unlabeled_label` (e.g. -1): training
    images with that label are unlabeled, they join only the unlabeled pool; without it any
    negative label is refused.
    """

    def __init__(
        self,
        path: str,
        name: str | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        hflip: bool = True,
        unlabeled_label: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.path = Path(path).expanduser()
        self.name = name or self.path.stem
        self.mean, self.std, self.hflip = mean, std, hflip
        self.unlabeled_label = unlabeled_label

    def data_location(self) -> str:
        return str(self.path)

    def _read_facts(self) -> _Facts:
        """Everything but the pixels: the arrays' headers, the labels and the class names."""
        headers = npz_headers(self.path, HOW_TO_WRITE)
        missing = [k for k in REQUIRED_KEYS if k not in headers]
        if missing:
            raise DataError(f"{self.path} lacks arrays {missing}; it must hold {', '.join(REQUIRED_KEYS)} [, classes]")
        for split in ("train", "test"):
            _check_images(f"x_{split}", *headers[f"x_{split}"], self.path)
        train_shape, test_shape = headers["x_train"][0], headers["x_test"][0]
        if train_shape[1:] != test_shape[1:]:
            raise DataError(f"{self.path}: x_train images {train_shape[1:]} and x_test images {test_shape[1:]} differ in size")
        y_train = _check_labels("y_train", load_npz_array(self.path, "y_train"), train_shape[0], self.path)
        y_test = _check_labels("y_test", load_npz_array(self.path, "y_test"), test_shape[0], self.path)
        classes = tuple(str(c) for c in load_npz_array(self.path, "classes")) if "classes" in headers else ()
        y_train, y_test, num_classes = resolve_array_labels(y_train, y_test, classes, self.unlabeled_label, self.path)
        channels = train_shape[-1]
        mean = tuple(self.mean) if self.mean else (PLACEHOLDER_STAT,) * channels
        std = tuple(self.std) if self.std else (PLACEHOLDER_STAT,) * channels
        info = DatasetInfo(self.name, num_classes, mean, std, train_shape[1], hflip=self.hflip, classes=classes, channels=channels)
        return _Facts(info, y_train, y_test)

    def read_info(self) -> DatasetInfo:
        return self._read_facts().info

    def load_pool(self) -> Pool:
        facts = self._read_facts()
        x_train, x_test = load_npz_array(self.path, "x_train"), load_npz_array(self.path, "x_test")
        mean = self.mean or (x_train.mean(axis=(0, 1, 2)) / 255).tolist()
        std = self.std or (x_train.std(axis=(0, 1, 2)) / 255 + 1e-8).tolist()
        info = replace(facts.info, mean=tuple(mean), std=tuple(std))
        return Pool(
            info=info,
            train=ArraySource(x_train, facts.y_train),
            test=ArraySource(x_test, facts.y_test),
            has_unknown_labels=self.unlabeled_label is not None,
        )
