from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .sources import ImageSource


class SSLDataset(Dataset):
    """Items `{"x": view(s), <label_key>: label, "idx": index into the training pool}`.

    Labeled and eval items carry their label as "y"; unlabeled items carry the
    true label as "y_hidden" (-1 when unknown), to be used only for monitoring
    pseudo-label quality.
    """

    def __init__(self, source: ImageSource, indices, transform: Callable, label_key: str = "y"):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.label_key = label_key

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """`key` is a position, or (position, augmentation seed) from a `StreamSampler`."""
        i, seed = key if isinstance(key, tuple) else (key, None)
        idx = int(self.indices[i])
        image = self.source.image(idx)
        if seed is None:
            x = self.transform(image)
        else:
            # Seed only the CPU generator the views draw from, and restore it afterwards.
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                x = self.transform(image)
        return {"x": x, self.label_key: int(self.source.targets[idx]), "idx": idx}
