"""SCAN's step 2: embed the training pool with a pretext network and mine each image's
nearest neighbours; run from a hook on the datamodule's eval-view pool loader."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..errors import ConfigError, ConfigFileNotFound
from ..functional import mine_neighbours, neighbour_purity
from ..modules.distributed import all_gather_uneven
from .init_from import read_torch_file


def load_embedder(path: str, device: torch.device):
    """The pretext network of an sslzoo checkpoint whose method can `embed` (SimCLR)."""
    from .. import methods

    if not Path(path).is_file():
        raise ConfigFileNotFound(f"pretext checkpoint {path} does not exist; train the pretext first (e.g. experiments/scan/*_simclr.yaml)")
    checkpoint = read_torch_file(path, "pretext", weights_only=False)
    name = (checkpoint.get("sslzoo") or {}).get("method")
    method = getattr(methods, name, None) if name else None
    if method is None or not hasattr(method, "embed"):
        raise ConfigError(
            f"{path} is a checkpoint of {name or 'an unknown method'}, which cannot embed images for neighbour mining; "
            "give a SimCLR checkpoint as `pretext`, or a mined table as `neighbours_file`"
        )
    model = method.load_from_checkpoint(path, map_location=device)
    return model.to(device).eval()


@torch.no_grad()
def embed_pool(embedder, loader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, pool indices, labels) of every image the loader's shards hold, gathered over processes."""
    features, indices, labels = [], [], []
    for batch in loader:
        features.append(embedder.embed(batch["x"].to(device)).float())
        indices.append(batch["idx"].to(device))
        labels.append(batch["y"].to(device))
    return tuple(all_gather_uneven(torch.cat(parts)) for parts in (features, indices, labels))


def mine_pool(embedder, loader, num_neighbours: int, device: torch.device, chunk_size: int | None = None, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Anchors (pool indices), their K+1 candidate neighbours (pool indices) and a report:
    mining time and purity (share of the K and of the first 5 neighbours sharing the anchor's label)."""
    start = time.perf_counter()
    features, indices, labels = embed_pool(embedder, loader, device)
    embedded = time.perf_counter()
    positions = mine_neighbours(features, num_neighbours, chunk_size=chunk_size, backend=backend)
    report = {"images": len(indices), "embed_seconds": embedded - start, "mine_seconds": time.perf_counter() - embedded}
    if (labels >= 0).any():
        for k in sorted({min(5, num_neighbours), num_neighbours}):
            report[f"purity_top{k}"] = neighbour_purity(positions.cpu(), labels.cpu(), k)
    return indices.cpu(), indices.cpu()[positions.cpu()], report
