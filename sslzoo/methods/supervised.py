from __future__ import annotations

from ..functional import cross_entropy
from .base import EMABuffers, SSLMethod


class Supervised(SSLMethod):
    """The labeled-only baseline: cross-entropy on weakly augmented labeled images. Its EMA
    (when `ema_decay` is set) is FixMatch's: parameters only, live BatchNorm statistics.

    Args:
        ema_buffers: the EMA's BN statistics: "copy" the live ones (FixMatch's protocol),
            "average" them, or keep its "own".
    """

    views = {"labeled": ["weak"], "unlabeled": []}

    def __init__(self, ema_buffers: EMABuffers = "copy", **kwargs):
        super().__init__(ema_buffers=ema_buffers, **kwargs)

    def training_step(self, batch, batch_idx):
        labeled = batch["labeled"]
        logits = self.network(labeled["x"])
        return self.total_loss({"sup": cross_entropy(logits, labeled["y"])}, len(labeled["y"]))
