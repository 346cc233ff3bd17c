from __future__ import annotations

from typing import Callable

import numpy as np
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

    def __getitem__(self, i: int) -> dict:
        idx = int(self.indices[i])
        return {
            "x": self.transform(self.source.image(idx)),
            self.label_key: int(self.source.targets[idx]),
            "idx": idx,
        }
