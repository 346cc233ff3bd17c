"""Whether a checkpoint's weights fit this model, said before torch's `Missing key(s)` wall."""
from __future__ import annotations

import torch

SHOWN = 3


def network_mismatch(saved: dict[str, torch.Tensor], current: dict[str, torch.Tensor]) -> str | None:
    """A short description of the keys and shapes that differ between two state dicts, or None."""
    missing = sorted(current.keys() - saved.keys())
    unexpected = sorted(saved.keys() - current.keys())
    reshaped = sorted(k for k in current.keys() & saved.keys() if tuple(current[k].shape) != tuple(saved[k].shape))
    parts = []
    for what, keys in (("missing from the checkpoint", missing), ("only in the checkpoint", unexpected), ("of another shape", reshaped)):
        if keys:
            more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            parts.append(f"{len(keys)} weights {what} ({', '.join(keys[:SHOWN])}{more})")
    return "; ".join(parts) or None
