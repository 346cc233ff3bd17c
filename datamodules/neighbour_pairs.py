"""SCAN's training items: an anchor and one of its mined nearest neighbours."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from sslzoo.errors import DataError

from .dataset import SSLDataset
from .splits import _splitmix64

# Salts that make the neighbour's column and augmentation seed independent of the anchor's seed.
_COLUMN_SALT, _NEIGHBOUR_SEED_SALT = 0x5C4E_0001, 0x5C4E_0002


def _derive(seed: int, salt: int) -> int:
    """A non-negative int63 hash of (seed, salt)."""
    with np.errstate(over="ignore"):
        mixed = _splitmix64(np.array([seed], dtype=np.uint64) ^ _splitmix64(np.array([salt], dtype=np.uint64)))
    return int(mixed[0] >> np.uint64(1))


def _as_index_array(values, name: str, ndim: int) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != ndim or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"neighbour table: {name} must be a {ndim}-D integer array, got shape {array.shape} dtype {array.dtype}")
    return array.astype(np.int64)


class NeighbourPairs(Dataset):
    """Items of `dataset` (an :class:`SSLDataset`) paired with a neighbour drawn from a table.

    `anchors` [M] and `neighbours` [M, K+1] hold pool indices: row i lists the K+1
    candidates of pool image anchors[i] (column 0 normally the anchor itself). Each
    item draws one candidate uniformly, the anchor included, as SCAN's
    ``NeighborsDataset`` does, and returns ``{"x", "neighbour_x", "idx",
    "neighbour_idx", <label_key>, "neighbour_<label_key>"}``; the neighbour is read
    from the same source and augmented with the same transform.

    With a `StreamSampler` key (position, seed) the anchor is augmented with `seed`
    (as plain `SSLDataset` items are) and the column and the neighbour's
    augmentation come from seeds hashed from it, so an item is a function of the key
    (exact resume). A plain position draws from torch's global RNG.
    """

    def __init__(self, dataset: SSLDataset, anchors, neighbours):
        self.dataset = dataset
        anchors = _as_index_array(anchors, "anchors", 1)
        neighbours = _as_index_array(neighbours, "neighbours", 2)
        if len(neighbours) != len(anchors) or neighbours.shape[1] < 1:
            raise DataError(
                f"neighbour table: {len(anchors)} anchors but neighbours of shape {neighbours.shape}; "
                "it needs one row of at least one candidate per anchor"
            )
        pool_size = len(dataset.source)
        if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= pool_size):
            raise DataError(
                f"neighbour table: candidate indices must lie in [0, {pool_size}) (the training pool), got "
                f"[{neighbours.min()}, {neighbours.max()}]; re-mine the neighbours (delete the neighbours file) "
                "or use the same dataset/split"
            )
        order = np.argsort(anchors, kind="stable")
        sorted_anchors = anchors[order]
        slot = np.minimum(np.searchsorted(sorted_anchors, dataset.indices), max(len(anchors) - 1, 0))
        found = sorted_anchors[slot] == dataset.indices if len(anchors) else np.zeros(len(dataset.indices), dtype=bool)
        if not found.all():
            missing = dataset.indices[~found]
            raise DataError(
                f"the neighbour table has no row for {len(missing)} of the {len(dataset.indices)} training images "
                f"(first: pool index {int(missing[0])}): it was mined on another pool; re-mine the neighbours "
                "(delete the neighbours file) or use the same dataset/split"
            )
        self.rows = neighbours[order[slot]]  # row of each dataset position

    @property
    def num_candidates(self) -> int:
        return self.rows.shape[1]

    def __len__(self) -> int:
        return len(self.dataset)

    def _view(self, idx: int, seed: int | None):
        image = self.dataset.source.image(idx)
        if seed is None:
            return self.dataset.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.dataset.transform(image)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        item = self.dataset[key]
        i, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            column, neighbour_seed = int(torch.randint(self.num_candidates, ())), None
        else:
            column, neighbour_seed = _derive(seed, _COLUMN_SALT) % self.num_candidates, _derive(seed, _NEIGHBOUR_SEED_SALT)
        neighbour = int(self.rows[i, column])
        label_key = self.dataset.label_key
        item["neighbour_x"] = self._view(neighbour, neighbour_seed)
        item["neighbour_idx"] = neighbour
        item[f"neighbour_{label_key}"] = int(self.dataset.source.targets[neighbour])
        return item
