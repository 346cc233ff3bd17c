"""The label rules of an `.npz` dataset (see `ArrayDataModule`), as pure functions of the arrays.

- Class ids are 0..C-1. With a `classes` array, C = len(classes); without one, C = the
  largest id + 1 and every id below it must have a training image: labels 1..10 (no 0) or
  sparse ids {0, 5, 9} are a labelling mistake, not empty classes. A class missing from the
  test split only is fine.
- Negative labels are refused, except the value chosen as `unlabeled_label` in y_train:
  those images join only the unlabeled pool (internally label -1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sslzoo.errors import DataError

from .sources import UNKNOWN_LABEL


def _ids(values) -> str:
    values = [int(v) for v in values]
    shown = ", ".join(str(v) for v in values[:10])
    return shown + (f", ... ({len(values)} in all)" if len(values) > 10 else "")


def _first_bad(y: np.ndarray, bad: np.ndarray) -> str:
    first = int(np.flatnonzero(bad)[0])
    return f"label {int(y[first])} at index {first}"


def _count(bad: np.ndarray) -> str:
    n = int(bad.sum())
    return f" ({n} such label{'s' if n > 1 else ''})"


def _refuse_negative(name: str, y: np.ndarray, unlabeled_label: int | None, path: Path) -> None:
    negative = y < 0
    if not negative.any():
        return
    if name == "y_test":
        hint = "the test split must be labeled: give its images class ids 0..C-1"
    elif unlabeled_label is None:
        hint = "class ids are 0..C-1; to mark training images as unlabeled give them one value, e.g. -1, and set unlabeled_label: -1"
    else:
        hint = f"class ids are 0..C-1 and only unlabeled_label={unlabeled_label} marks an unlabeled image"
    raise DataError(f"{path}: {name} holds a negative {_first_bad(y, negative)}{_count(negative)}; {hint}")


def resolve_array_labels(
    y_train: np.ndarray, y_test: np.ndarray, classes: tuple[str, ...], unlabeled_label: int | None, path: Path
) -> tuple[np.ndarray, np.ndarray, int]:
    """(y_train with unlabeled images as -1, y_test, number of classes), or a DataError."""
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    if unlabeled_label is not None:
        if (y_test == unlabeled_label).any():
            raise DataError(
                f"{path}: y_test holds the unlabeled_label {unlabeled_label} ({_first_bad(y_test, y_test == unlabeled_label)}); "
                "the test split must be labeled: give its images class ids 0..C-1"
            )
        y_train = np.where(y_train == unlabeled_label, UNKNOWN_LABEL, y_train)
        known = y_train != UNKNOWN_LABEL
    else:
        known = np.ones(len(y_train), dtype=bool)
    _refuse_negative("y_train", np.where(known, y_train, 0), unlabeled_label, path)
    _refuse_negative("y_test", y_test, unlabeled_label, path)
    train_labels = y_train[known]
    if classes:
        num_classes = len(classes)
        for name, y in (("y_train", train_labels), ("y_test", y_test)):
            beyond = y >= num_classes
            if beyond.any():
                raise DataError(
                    f"{path}: {name} {_first_bad(y, beyond)} is outside [0, {num_classes}){_count(beyond)}, the ids of "
                    f"the file's {num_classes} classes; fix the labels or the classes array"
                )
        return y_train, y_test, num_classes
    if not len(train_labels):
        raise DataError(f"{path}: y_train has no labeled image (all are unlabeled_label={unlabeled_label}); label some training images")
    num_classes = int(max(train_labels.max(), y_test.max(initial=0))) + 1
    without_images = np.flatnonzero(np.bincount(train_labels, minlength=num_classes) == 0)
    if len(without_images):
        present = np.unique(train_labels)
        raise DataError(
            f"{path}: class {'ids' if len(without_images) > 1 else 'id'} {_ids(without_images)} "
            f"{'have' if len(without_images) > 1 else 'has'} no training image (y_train holds ids {_ids(present)}); "
            f"relabel the classes 0..C-1 without gaps (e.g. np.unique(y, return_inverse=True)) or add a classes array naming every class"
        )
    return y_train, y_test, num_classes
