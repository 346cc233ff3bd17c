"""The best checkpoints, by the metric the method says selects it."""
from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint

AUTO = "auto"


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint whose `monitor` may be "auto": the method's
    `checkpoint_metric` (val/acc for classifiers; None, i.e. the newest, for clustering methods,
    whose clustering accuracy would be selected on labels)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.monitor == AUTO:
            self.monitor = getattr(pl_module, "checkpoint_metric", "val/acc")
            if self.monitor is None:
                self.save_top_k = min(self.save_top_k, 1)  # without a metric Lightning keeps only the newest
        super().setup(trainer, pl_module, stage)
