"""Image sources: indexable collections of uint8 (C, H, W) images plus labels.

A label of -1 means "unknown" (e.g. STL-10's unlabeled split). Sources hold no
augmentation; views are applied by `SSLDataset`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from sslzoo.errors import DataError

UNKNOWN_LABEL = -1


def check_targets(targets: np.ndarray, num_classes: int, where: str, allow_unknown: bool = False) -> np.ndarray:
    targets = np.asarray(targets).astype(np.int64)
    low = UNKNOWN_LABEL if allow_unknown else 0
    bad = (targets < low) | (targets >= num_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: label {int(targets[first])} at index {first} is outside [0, {num_classes}); "
            f"{int(bad.sum())} labels are out of range. Labels must be class ids 0..{num_classes - 1}"
            + (" (or -1 for unknown)" if allow_unknown else "")
            + "; fix the labels or the number of classes."
        )
    return targets


class ImageSource:
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, index: int) -> torch.Tensor:
        raise NotImplementedError


class ArraySource(ImageSource):
    """Images held in memory as a uint8 array, (N, H, W, C) or (N, C, H, W)."""

    def __init__(self, images: np.ndarray, targets, channels_last: bool = True):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"images must be a uint8 array of 4 dims, got {images.dtype} {images.shape}")
        self.images = images
        self.channels_last = channels_last
        self.targets = np.asarray(targets).astype(np.int64)
        if len(self.targets) != len(images):
            raise DataError(f"{len(images)} images but {len(self.targets)} labels")

    def image(self, index: int) -> torch.Tensor:
        img = torch.from_numpy(self.images[index])
        return img.permute(2, 0, 1) if self.channels_last else img


def size_mismatch(path: str, size: tuple[int, int], expected: tuple[int, int]) -> str:
    """The words for an image of the wrong size in a fixed-size dataset (sizes are (width, height))."""
    return f"{path} is {size[0]}x{size[1]} pixels, not {expected[0]}x{expected[1]}"


class FileSource(ImageSource):
    """Images decoded from files (JPEG/PNG/...) to uint8 tensors on access: RGB, or one
    channel with `channels=1`.

    `expected_size` ((width, height), fixed-size datasets): an image of another size is
    refused with its file named, instead of failing later when the batch is stacked.

    Decoding goes through Pillow (libjpeg-turbo), torchvision's own decoders being
    deprecated since 0.29; everything after decoding works on tensors.
    """

    def __init__(self, paths: Sequence[str | Path], targets, expected_size: tuple[int, int] | None = None, channels: int = 3):
        self.paths = [str(p) for p in paths]
        self.targets = np.asarray(targets).astype(np.int64)
        self.expected_size = expected_size
        self.mode = "L" if channels == 1 else "RGB"

    def image(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                size = img.size
                pixels = np.array(img.convert(self.mode))
        except Exception as err:  # Pillow raises OSError / SyntaxError / ValueError for corrupt data
            raise DataError(
                f"cannot decode image file {path} ({err}); the file is corrupt or not an image: "
                "replace or delete it"
            ) from err
        if self.expected_size is not None and size != self.expected_size:
            raise DataError(
                f"{size_mismatch(path, size, self.expected_size)} (fixed_size: true expects image_size x image_size "
                "pixels); resize or remove it, or set fixed_size: false to resize every image"
            )
        tensor = torch.from_numpy(pixels)
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


class ConcatSource(ImageSource):
    """Several sources seen as one; index i of part k follows all earlier parts."""

    def __init__(self, parts: Sequence[ImageSource]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.targets = np.concatenate([p.targets for p in self.parts])

    def image(self, index: int) -> torch.Tensor:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part].image(index - int(self.offsets[part]))


class SubsetSource(ImageSource):
    """Some images of a source, renumbered 0..n-1; `targets` replaces their labels (e.g. -1
    to hide them)."""

    def __init__(self, source: ImageSource, indices: np.ndarray, targets: np.ndarray | None = None):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = source.targets[self.indices] if targets is None else np.asarray(targets, dtype=np.int64)

    def image(self, index: int) -> torch.Tensor:
        return self.source.image(int(self.indices[index]))
