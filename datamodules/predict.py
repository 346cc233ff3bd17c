"""Which images `predict` runs on (`predict_split`) and what each item shows.

A split name, or a folder of new images (any depth, no labels). Items are numbered
0..n-1 in the split's order ("idx"), so each appears once; "y" is the label where the run
knows it and -1 where it does not: the unlabeled pool's labels stay hidden, and a new
folder has none.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS

from sslzoo.errors import ConfigError, DataError

from .info import DatasetInfo
from .sources import UNKNOWN_LABEL, ConcatSource, FileSource, ImageSource, SubsetSource
from .verify import should_verify, verify_image_files

PREDICT_SPLITS = {
    "test": "the test set",
    "val": "the validation hold-out (the test set when num_val is 0, as in validation)",
    "labeled": "the labeled images",
    "unlabeled": "the unlabeled pool, labels hidden (to export pseudo-labels)",
    "train": "the whole training pool, labels shown for the labeled and validation images only",
}


def check_predict_split(value: str) -> None:
    if value in PREDICT_SPLITS or Path(value).expanduser().is_dir():
        return
    raise ConfigError(
        f"predict_split {value!r} is neither one of {', '.join(PREDICT_SPLITS)} nor an existing folder of images; "
        "give one of those names or the path of a folder"
    )


def image_files(folder: Path) -> list[str]:
    """Every image under `folder` (any depth), by extension, in sorted path order."""
    extensions = tuple(e.lower() for e in IMG_EXTENSIONS)
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def folder_source(folder: Path, info: DatasetInfo) -> FileSource:
    """New unlabeled images. A fixed-size dataset's eval view does not resize, so there an image of
    another size than the training images is refused (with its name) rather than silently resized."""
    paths = image_files(folder)
    if not paths:
        raise DataError(f"predict_split folder {folder} holds no images (extensions {', '.join(IMG_EXTENSIONS)}); put images in it")
    expected = (info.image_size, info.image_size) if info.fixed_size else None
    if should_verify(None, len(paths)):
        verify_image_files(paths, f"predict_split folder {folder}", expected)
    return FileSource(paths, np.full(len(paths), UNKNOWN_LABEL), expected_size=expected, channels=info.channels)


def prediction_source(split: str, train: ImageSource, test: ImageSource, labeled, val, unlabeled, info: DatasetInfo) -> ImageSource:
    """The items of `split` as a source numbered 0..n-1, its targets the labels to show."""
    if split == "test" or (split == "val" and not len(val)):
        return test
    if split == "val":
        return SubsetSource(train, val)
    if split == "labeled":
        return SubsetSource(train, labeled)
    if split == "unlabeled":
        return SubsetSource(train, unlabeled, targets=np.full(len(unlabeled), UNKNOWN_LABEL))
    if split == "train":
        shown = np.full(len(train), UNKNOWN_LABEL, dtype=np.int64)
        known = np.union1d(labeled, val).astype(np.int64)
        shown[known] = train.targets[known]
        return SubsetSource(train, np.arange(len(train)), targets=shown)
    return folder_source(Path(split).expanduser(), info)


def _path(source: ImageSource, index: int) -> str | None:
    if isinstance(source, FileSource):
        return source.paths[index]
    if isinstance(source, SubsetSource):
        return _path(source.source, int(source.indices[index]))
    if isinstance(source, ConcatSource):
        part = int(np.searchsorted(source.offsets, index, side="right")) - 1
        return _path(source.parts[part], index - int(source.offsets[part]))
    return None


def item_names(source: ImageSource) -> list[str] | None:
    """The file of every item, or None when the images are not files (arrays)."""
    if not len(source) or _path(source, 0) is None:
        return None if len(source) else []
    names = [_path(source, i) for i in range(len(source))]
    return None if any(name is None for name in names) else names
