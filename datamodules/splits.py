"""Labeled/validation splits: pure functions of (targets, counts, split_seed).

The order in which a class's images are drawn is a splitmix64 hash of
(split_seed, index), computed with plain uint64 arithmetic. Unlike numpy's or
torch's RNG streams it can never change with a library version, so a split is
the same on every machine, rank, world size and training seed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslzoo.errors import ConfigError, DataError, DataFileNotFound

SPLIT_FILE_VERSION = 1


def _splitmix64(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hash_order(indices: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random permutation of `indices` keyed by `seed`."""
    with np.errstate(over="ignore"):
        salt = _splitmix64(np.array([seed], dtype=np.uint64))
        keys = _splitmix64(indices.astype(np.uint64) ^ salt)
    return indices[np.argsort(keys, kind="stable")]


def _as_targets(targets) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise DataError(f"targets must be a 1-D integer array, got shape {targets.shape} dtype {targets.dtype}")
    return targets.astype(np.int64)


def _class_name(c: int, class_names) -> str:
    return f"class {c} ({class_names[c]})" if c < len(class_names) else f"class {c}"


def _shortage(counts: np.ndarray, num_per_class: int, option: str, class_names) -> str:
    """Why `num_per_class` images of every class cannot be drawn, and what to change."""
    short = np.flatnonzero(counts < num_per_class)
    empty = [int(c) for c in short if counts[c] == 0]
    if empty:
        named = ", ".join(_class_name(c, class_names) for c in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        return (
            f"{named} {'has' if len(empty) == 1 else 'have'} no training images available ({option} asks for {num_per_class} "
            "per class); give every class training images (its folder or labels), or leave the empty classes out "
            "(the classes list, or relabel the others 0..C-1)"
        )
    first = int(short[0])
    return (
        f"{_class_name(first, class_names)} has only {int(counts[first])} images available but {num_per_class} per class "
        f"were asked for by {option} ({len(short)} of the {len(counts)} classes have fewer); lower {option} to at most "
        f"{int(counts.min()) * len(counts)} in total for this dataset, or add images to those classes"
    )


def sample_balanced_indices(
    targets, num_per_class: int, seed: int, candidates=None, num_classes=None, option: str = "the count", class_names=()
) -> np.ndarray:
    """`num_per_class` indices of every class among `candidates`, sorted. `option` and
    `class_names` only word the error when a class has too few images."""
    targets = _as_targets(targets)
    candidates = np.arange(len(targets)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    num_classes = int(targets.max()) + 1 if num_classes is None else num_classes
    members = [candidates[targets[candidates] == c] for c in range(num_classes)]
    counts = np.array([len(m) for m in members], dtype=np.int64)
    if (counts < num_per_class).any():
        error = DataError if (counts == 0).any() else ConfigError
        raise error(_shortage(counts, num_per_class, option, class_names))
    chosen = [_hash_order(m, seed)[:num_per_class] for m in members]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def sample_labeled_indices(
    targets, num_labels: int, seed: int, num_classes: int | None = None, candidates=None, class_names=()
) -> np.ndarray:
    """Indices of `num_labels` labeled images, balanced over classes.

    A pure function of (targets, num_labels, seed): it does not touch any
    global RNG and does not depend on the rank, world size or training seed.
    Entries of `targets` below 0 (unknown label) are never chosen.
    """
    targets = _as_targets(targets)
    known = targets[targets >= 0]
    num_classes = int(known.max()) + 1 if num_classes is None else num_classes
    if num_labels <= 0 or num_labels % num_classes:
        raise ConfigError(
            f"num_labels={num_labels} must be a positive multiple of the number of classes ({num_classes}) "
            f"so the labeled set is balanced; try {max(1, round(num_labels / num_classes)) * num_classes}"
        )
    if candidates is None:
        candidates = np.flatnonzero(targets >= 0)
    return sample_balanced_indices(targets, num_labels // num_classes, seed, candidates, num_classes, "num_labels", class_names)


def targets_fingerprint(targets) -> str:
    """Short hash of the label array: detects a split file made for other data."""
    return hashlib.sha256(_as_targets(targets).tobytes()).hexdigest()[:16]


@dataclass
class Split:
    """Which training-pool indices are labeled (and held out for validation)."""

    dataset: str
    num_train: int
    targets_sha: str
    labeled: np.ndarray
    val: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    split_seed: int | None = None

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": SPLIT_FILE_VERSION,
            "dataset": self.dataset,
            "num_train": self.num_train,
            "targets_sha": self.targets_sha,
            "split_seed": self.split_seed,
            "num_labels": int(len(self.labeled)),
            "labeled_indices": [int(i) for i in self.labeled],
            "val_indices": [int(i) for i in self.val],
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFound(f"split file {path} does not exist; omit split_file to sample a split, or fix the path")
        try:
            payload = json.loads(path.read_text())
            return cls(
                dataset=payload["dataset"],
                num_train=int(payload["num_train"]),
                targets_sha=payload["targets_sha"],
                labeled=np.asarray(payload["labeled_indices"], dtype=np.int64),
                val=np.asarray(payload.get("val_indices", []), dtype=np.int64),
                split_seed=payload.get("split_seed"),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DataError(f"split file {path} is not a valid sslzoo split file ({err!r}); delete it to re-sample") from err

    def check_against(self, dataset: str, targets, path: str | Path = "<split>") -> None:
        """Raise if this split was not made for `dataset` with these exact labels."""
        problems = []
        if self.dataset != dataset:
            problems.append(f"it was made for dataset '{self.dataset}', not '{dataset}'")
        if self.num_train != len(targets):
            problems.append(f"it was made for {self.num_train} training images, this dataset has {len(targets)}")
        elif self.targets_sha != targets_fingerprint(targets):
            problems.append("the training labels differ from the ones it was made for")
        all_idx = np.concatenate([self.labeled, self.val])
        if len(all_idx) and (all_idx.min() < 0 or all_idx.max() >= len(targets)):
            problems.append("it holds indices outside the training set")
        if problems:
            raise DataError(
                f"split file {path} does not match this dataset: {'; '.join(problems)}. "
                "Use the split file written for this dataset, or remove split_file to sample a new split."
            )
