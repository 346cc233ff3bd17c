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

UNKNOWN_LABEL = -1


def check_targets(targets: np.ndarray, num_classes: int, where: str, allow_unknown: bool = False) -> np.ndarray:
    targets = np.asarray(targets).astype(np.int64)
    low = UNKNOWN_LABEL if allow_unknown else 0
    bad = (targets < low) | (targets >= num_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
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
            raise ValueError(f"images must be a uint8 array of 4 dims, got {images.dtype} {images.shape}")
        self.images = images
        self.channels_last = channels_last
        self.targets = np.asarray(targets).astype(np.int64)
        if len(self.targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.targets)} labels")

    def image(self, index: int) -> torch.Tensor:
        img = torch.from_numpy(self.images[index])
        return img.permute(2, 0, 1) if self.channels_last else img


class FileSource(ImageSource):
    """Images decoded from files (JPEG/PNG/...) to RGB uint8 tensors on access.

    Decoding goes through Pillow (libjpeg-turbo), torchvision's own decoders being
    deprecated since 0.29; everything after decoding works on tensors.
    """

    def __init__(self, paths: Sequence[str | Path], targets):
        self.paths = [str(p) for p in paths]
        self.targets = np.asarray(targets).astype(np.int64)

    def image(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                pixels = np.array(img.convert("RGB"))
            return torch.from_numpy(pixels).permute(2, 0, 1)
        except Exception as err:  # Pillow raises OSError / SyntaxError / ValueError for corrupt data
            raise RuntimeError(
                f"cannot decode image file {path} ({err}); the file is corrupt or not an image: "
                "replace or delete it"
            ) from err


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
    def __init__(self, source: ImageSource, indices: np.ndarray):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = source.targets[self.indices]

    def image(self, index: int) -> torch.Tensor:
        return self.source.image(int(self.indices[index]))
