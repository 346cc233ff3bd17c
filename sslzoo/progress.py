"""A progress bar that keeps what matters readable in a 100-column terminal: the loss and the
validation accuracy first, under short names, and none of the long `train/...` names."""
from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

# logged name -> shown name, in the order shown. tqdm cuts the line at the terminal's width,
# so the first ones are those that must stay visible.
SHOWN_METRICS: dict[str, str] = {
    "train/loss": "loss",
    "val/acc": "val/acc",
    "val/cluster_acc": "val/cluster_acc",
    "val/cluster_acc_many_to_one": "val/cluster_acc",
    "train/mask_rate": "mask",
    "train/pseudo_acc_masked": "pl_acc",
}


def shown_metrics(logged: dict, names: dict[str, str] = SHOWN_METRICS) -> dict:
    """The entries of `logged` (the progress-bar metrics) that `names` lists, renamed, in its order."""
    return {shown: logged[name] for name, shown in names.items() if name in logged}


class SSLProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar showing only `metrics` (logged name -> shown name; default
    `SHOWN_METRICS`): loss, val/acc (val/cluster_acc for clustering methods), mask rate and
    the masked pseudo-label accuracy; no `v_num`. Every metric still reaches the loggers."""

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False, metrics: dict[str, str] | None = None):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self.metrics = dict(SHOWN_METRICS if metrics is None else metrics)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        return shown_metrics(trainer.progress_bar_metrics, self.metrics)


def progress_bar_callbacks(enable_progress_bar: bool | None, callbacks: list[L.Callback]) -> list[L.Callback]:
    """[SSLProgressBar()] to add to a trainer's callbacks, or [] when the bar is switched off
    (`--trainer.enable_progress_bar false`: Lightning refuses a bar callback then) or the
    callbacks already hold a progress bar (Lightning accepts only one)."""
    if enable_progress_bar is False or any(isinstance(callback, ProgressBar) for callback in callbacks):
        return []
    return [SSLProgressBar()]
