"""Custom data from one `.npz` file: x_train, y_train, x_test, y_test (uint8 NHWC) [, classes]."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Pool, SSLDataModule
from .info import DatasetInfo
from .sources import ArraySource

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_images(name: str, x: np.ndarray, path: Path) -> None:
    if x.dtype != np.uint8:
        raise ValueError(f"{path}: {name} has dtype {x.dtype}; images must be uint8 in [0, 255] (convert with x.astype(np.uint8) after scaling)")
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: {name} has shape {x.shape}; images must be (N, H, W, C) with C = 1 or 3, channels last")


def _check_labels(name: str, y: np.ndarray, n: int, path: Path) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: {name} must be {n} integer class ids (shape ({n},)), got {y.dtype} {y.shape}")
    return y.astype(np.int64)


class ArrayDataModule(SSLDataModule):
    """In-memory dataset from an array file; mean/std are computed from x_train unless given."""

    def __init__(self, path: str, name: str | None = None, mean: list[float] | None = None, std: list[float] | None = None, hflip: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.path = Path(path).expanduser()
        self.name = name or self.path.stem
        self.mean, self.std, self.hflip = mean, std, hflip

    def data_location(self) -> str:
        return str(self.path)

    def load_pool(self) -> Pool:
        if not self.path.is_file():
            raise FileNotFoundError(f"array file {self.path} not found; give the path of an .npz with keys {', '.join(REQUIRED_KEYS)}")
        with np.load(self.path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED_KEYS if k not in data]
            if missing:
                raise ValueError(f"{self.path} lacks arrays {missing}; it must hold {', '.join(REQUIRED_KEYS)} [, classes]")
            arrays = {k: data[k] for k in data.files}
        for split in ("train", "test"):
            _check_images(f"x_{split}", arrays[f"x_{split}"], self.path)
        if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
            raise ValueError(f"{self.path}: x_train images {arrays['x_train'].shape[1:]} and x_test images {arrays['x_test'].shape[1:]} differ in size")
        y_train = _check_labels("y_train", arrays["y_train"], len(arrays["x_train"]), self.path)
        y_test = _check_labels("y_test", arrays["y_test"], len(arrays["x_test"]), self.path)
        classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else ()
        num_classes = len(classes) or int(max(y_train.max(), y_test.max())) + 1
        x_train = arrays["x_train"]
        mean = self.mean or tuple((x_train.mean(axis=(0, 1, 2)) / 255).tolist())
        std = self.std or tuple((x_train.std(axis=(0, 1, 2)) / 255 + 1e-8).tolist())
        info = DatasetInfo(self.name, num_classes, tuple(mean), tuple(std), int(x_train.shape[1]), hflip=self.hflip, classes=classes)
        return Pool(info=info, train=ArraySource(x_train, y_train), test=ArraySource(arrays["x_test"], y_test))
