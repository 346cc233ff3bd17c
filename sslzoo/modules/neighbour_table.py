from __future__ import annotations

import numpy as np
import torch
from torch import nn


class NeighbourTable(nn.Module):
    """SCAN's mined neighbours: `neighbours[i]` holds the K+1 candidate pool indices of the
    anchor `anchors[i]` (column 0 normally the anchor itself, which SCAN keeps as a candidate).

    Persistent buffers, so a resumed run keeps the table it trained with; their size is only
    known once mined, so loading a state dict resizes them to the saved shape.
    """

    def __init__(self, num_candidates: int):
        super().__init__()
        self.num_candidates = num_candidates
        self.register_buffer("anchors", torch.zeros(0, dtype=torch.long))
        self.register_buffer("neighbours", torch.zeros(0, num_candidates, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.anchors)

    def fill(self, anchors: torch.Tensor, neighbours: torch.Tensor) -> None:
        if neighbours.shape != (len(anchors), self.num_candidates):
            raise ValueError(f"expected a table of shape ({len(anchors)}, {self.num_candidates}), got {tuple(neighbours.shape)}")
        order = torch.argsort(anchors)
        self.anchors = anchors[order].to(self.anchors.device, torch.long)
        self.neighbours = neighbours[order].to(self.neighbours.device, torch.long)

    def save(self, path) -> None:
        np.savez(path, anchors=self.anchors.cpu().numpy(), neighbours=self.neighbours.cpu().numpy())

    def load(self, path) -> None:
        with np.load(path) as data:
            anchors, neighbours = torch.from_numpy(data["anchors"]), torch.from_numpy(data["neighbours"])
        if neighbours.shape[1] != self.num_candidates:
            raise ValueError(
                f"{path} holds {neighbours.shape[1] - 1} neighbours per image but num_neighbours={self.num_candidates - 1}; "
                "delete the file to mine again or set num_neighbours to match"
            )
        self.fill(anchors, neighbours)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("anchors", "neighbours"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
