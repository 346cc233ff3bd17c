"""The data fingerprint a checkpoint carries, so a resumed run trains on the same split.

A fingerprint is a flat dict of plain values (str, int, bool, None; it loads with
`torch.load(weights_only=True)`) in three groups:

- settings: the split's options as the user gave them (num_labels, split_seed, ...);
  a mismatch names the flag to resume with.
- data: what the dataset *is*: sizes, hashes of the label arrays and a cheap content
  hash (file names relative to the root for image folders, the array shape and a
  fixed sample of images for in-memory arrays). No pixel is read from disk, so it
  costs a fraction of a second even for ImageNet.
- split: hashes of the labeled, validation and unlabeled index arrays, the result of
  (data, settings).

Identity is content, not location: `data_location` (the root or file path) and the
dataset's name (by default the folder's or file's name) are stored to help the user
but never compared, so a dataset moved or renamed on disk resumes.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .sources import ArraySource, ConcatSource, FileSource, ImageSource, SubsetSource

FINGERPRINT_VERSION = 1
FINGERPRINT_KEY = "sslzoo_data_fingerprint"
IMAGES_SAMPLED = 64

DATA_KEYS = ("datamodule", "num_classes", "train_items", "train_labels", "train_content", "test_items", "test_labels")
SPLIT_KEYS = ("labeled_count", "labeled", "val", "unlabeled")
# Where the data lies, and names derived from it (a folder's or file's name), is not identity.
NOT_COMPARED = ("version", "data_location", "dataset")
HASHED = ("train_labels", "train_content", "test_labels", "labeled", "val", "unlabeled")
DESCRIPTIONS = {
    "datamodule": "datamodule class",
    "num_classes": "number of classes",
    "train_items": "training images",
    "train_labels": "training labels",
    "train_content": "training images (file names or sampled pixels)",
    "test_items": "test images",
    "test_labels": "test labels",
    "labeled_count": "labeled images",
    "labeled": "labeled indices",
    "val": "validation indices",
    "unlabeled": "unlabeled indices",
}


def digest(*parts) -> str:
    """Short sha256 of byte strings, strings and integer arrays (int64, so the dtype never matters)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part, dtype=np.int64).tobytes()
        elif isinstance(part, str):
            part = part.encode()
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:16]


def _relative(path: str, root: str) -> str:
    return path[len(root):] if path.startswith(root) else path


def source_content(source: ImageSource, root: Path) -> str:
    """A cheap hash of what `source` holds, independent of where it lies on disk."""
    if isinstance(source, FileSource):
        prefix = str(root).rstrip(os.sep) + os.sep
        return digest("files", "\n".join(_relative(p, prefix) for p in source.paths))
    if isinstance(source, ArraySource):
        images = source.images
        sample = np.unique(np.linspace(0, len(images) - 1, min(len(images), IMAGES_SAMPLED)).astype(np.int64))
        return digest("array", str(images.shape), str(images.dtype), np.ascontiguousarray(images[sample]).tobytes())
    if isinstance(source, ConcatSource):
        return digest("concat", *(source_content(part, root) for part in source.parts))
    if isinstance(source, SubsetSource):
        return digest("subset", source_content(source.source, root), source.indices)
    return digest("other", type(source).__qualname__, str(len(source)))


def data_fingerprint(
    datamodule: str, settings: dict, dataset: str, num_classes: int, train: ImageSource, test: ImageSource,
    root: Path, labeled, val, unlabeled, data_location: str,
) -> dict:
    return {
        "version": FINGERPRINT_VERSION,
        "data_location": data_location,
        **settings,
        "datamodule": datamodule,
        "dataset": dataset,
        "num_classes": int(num_classes),
        "train_items": len(train),
        "train_labels": digest(train.targets),
        "train_content": source_content(train, root),
        "test_items": len(test),
        "test_labels": digest(test.targets),
        "labeled_count": len(labeled),
        "labeled": digest(np.asarray(labeled)),
        "val": digest(np.asarray(val)),
        "unlabeled": digest(np.asarray(unlabeled)),
    }


def fingerprint_mismatch(saved: dict, current: dict, checkpoint: str = "the checkpoint") -> str | None:
    """None when `current` is the data `saved` was made on; otherwise one message that lists
    every difference and says how to resume."""
    # Keys only one side has (a fingerprint of another sslzoo version) are not evidence of other data.
    keys = [k for k in saved if k in current and k not in NOT_COMPARED]
    differing = [k for k in keys if saved.get(k) != current.get(k)]
    if not differing:
        return None
    settings = [k for k in differing if k not in DATA_KEYS and k not in SPLIT_KEYS]
    fixes = []
    if settings:
        fixes.append("resume with " + " ".join(f"--data.init_args.{k} {_flag_value(saved[k])}" for k in settings))
    if any(k in DATA_KEYS for k in differing):
        fixes.append(f"point the datamodule at the data the run was trained on (it was read from {saved.get('data_location')})")
    if not fixes:
        fixes.append("resume with the split the run was trained with (the same split_file, fold or label_subset file)")
    return (
        f"{checkpoint} was trained on other data than this run ({'; '.join(_difference(k, saved, current) for k in differing)}). "
        f"To continue that run, {' and '.join(fixes)}; to train on this data, start a new run in another "
        "default_root_dir (or without --ckpt_path)."
    )


def _difference(key: str, saved: dict, current: dict) -> str:
    if key in HASHED:
        return f"{DESCRIPTIONS[key]} differ"
    return f"{DESCRIPTIONS.get(key, key)}: checkpoint {saved[key]!r} vs this run {current[key]!r}"


def _flag_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def fingerprints_in_checkpoint(path) -> list[dict]:
    """The data fingerprints stored anywhere at the top of a checkpoint file (memory-mapped, so
    the weights are not read); empty when there are none or the file cannot be read this way."""
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # remote paths, legacy formats, pickled objects: fall back to "unchecked"
        return []
    return [entry[FINGERPRINT_KEY] for entry in checkpoint.values() if isinstance(entry, dict) and FINGERPRINT_KEY in entry]
