"""Tiny fake datasets written in the real on-disk formats, so the real loading code runs."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def _images(rng: np.random.Generator, n: int, size: int, channels: int = 3) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def _balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes)


def write_cifar10(root: Path, per_batch: int = 20, num_test: int = 30, seed: int = 0) -> Path:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: pickled dicts, data (N, 3072) CHW rows."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = num_test if name == "test_batch" else per_batch
        x = _images(rng, n, 32).transpose(0, 3, 1, 2).reshape(n, -1)
        entry = {"batch_label": name, "labels": _balanced_labels(n, 10, rng).tolist(), "data": x, "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return Path(root)


def write_cifar100(root: Path, num_train: int = 400, num_test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    fine_to_coarse = np.arange(100) % 20
    for name, n in (("train", num_train), ("test", num_test)):
        fine = _balanced_labels(n, 100, rng)
        entry = {
            "data": _images(rng, n, 32).transpose(0, 3, 1, 2).reshape(n, -1),
            "fine_labels": fine.tolist(),
            "coarse_labels": fine_to_coarse[fine].tolist(),
            "filenames": [f"{i}.png" for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"coarse{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return Path(root)


def write_svhn(root: Path, sizes=None, seed: int = 0) -> Path:
    """{train,test,extra}_32x32.mat: X (32, 32, 3, N) uint8, y (N, 1) with digit 0 stored as 10."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 60, "test": 30, "extra": 40}
    Path(root).mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        x = _images(rng, n, 32).transpose(1, 2, 3, 0)
        y = _balanced_labels(n, 10, rng)
        y[y == 0] = 10
        scipy.io.savemat(str(Path(root) / f"{split}_32x32.mat"), {"X": x, "y": y.reshape(-1, 1).astype(np.uint8)})
    return Path(root)


def write_stl10(root: Path, num_train: int = 50, num_test: int = 20, num_unlabeled: int = 30, seed: int = 0) -> Path:
    """stl10_binary/*.bin: uint8 images stored column-major (N, 3, 96, 96) transposed; labels 1..10."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)

    def write_images(name, n):
        x = _images(rng, n, 96).transpose(0, 3, 1, 2)  # NCHW
        x.transpose(0, 1, 3, 2).tofile(folder / name)
        return x

    for split, n in (("train", num_train), ("test", num_test)):
        write_images(f"{split}_X.bin", n)
        (_balanced_labels(n, 10, rng) + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    write_images("unlabeled_X.bin", num_unlabeled)
    folds = [" ".join(str(i) for i in sorted(rng.choice(num_train, 10, replace=False))) for _ in range(10)]
    (folder / "fold_indices.txt").write_text("\n".join(folds) + "\n")
    (folder / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]) + "\n")
    return Path(root)


def write_image_folder(root: Path, splits=("train", "val"), classes=("n01", "n02", "n03"), per_class=(6, 2), size=40, seed=0, ext="JPEG") -> Path:
    """root/<split>/<class>/<class>_<i>.<ext>, ImageNet-style names, varying image sizes."""
    rng = np.random.default_rng(seed)
    for split, n in zip(splits, per_class):
        for c in classes:
            folder = Path(root) / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = size + rng.integers(0, 8), size + rng.integers(0, 8)
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{split}{i}.{ext}", format="JPEG" if ext.lower() in ("jpeg", "jpg") else "PNG")
    return Path(root)


def write_npz(path: Path, num_train: int = 40, num_test: int = 20, num_classes: int = 4, size: int = 16, channels: int = 3, seed: int = 0, **overrides) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": _images(rng, num_train, size, channels),
        "y_train": _balanced_labels(num_train, num_classes, rng),
        "x_test": _images(rng, num_test, size, channels),
        "y_test": _balanced_labels(num_test, num_classes, rng),
        "classes": np.array([f"class{i}" for i in range(num_classes)]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return Path(path)


def write_image_files(folder: Path, count: int, size=(16, 16), ext: str = "png", seed: int = 0, prefix: str = "img") -> list[Path]:
    """`count` RGB images of `size` (width, height) in `folder` (created), named <prefix><i>.<ext>."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"{prefix}{i}.{ext}"
        Image.fromarray(pixels).save(path, format="JPEG" if ext.lower() in ("jpeg", "jpg") else "PNG")
        paths.append(path)
    return paths


def write_fixed_size_folder(root: Path, classes=("a", "b"), per_class=(4, 2), size: int = 16, seed: int = 0) -> Path:
    """root/{train,test}/<class>/*.png, every image size x size (a fixed-size folder dataset)."""
    for split, n in zip(("train", "test"), per_class):
        for k, c in enumerate(classes):
            write_image_files(Path(root) / split / c, n, (size, size), seed=seed + 31 * k + (split == "test"), prefix=f"{c}_{split}")
    return Path(root)
