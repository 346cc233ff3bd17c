"""Where a picture goes: a PNG in the run directory, and every image-capable logger."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from PIL import Image

DPI = 100


def picture_path(run_dir: str | Path, name: str, step: int) -> Path:
    return Path(run_dir) / "pictures" / f"{name}_step{step:08d}.png"


def publish_figure(figure: Figure, name: str, step: int, run_dir: str | Path, loggers: list[Logger]) -> Path:
    """Write `figure` to <run_dir>/pictures/<name>_step<step>.png and log that image as
    "pictures/<name>" at `step` to W&B (`log_image`) and TensorBoard (`add_image`); other
    loggers cannot show images and are skipped. Call it on rank 0 only."""
    path = picture_path(run_dir, name, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    key = f"pictures/{name}"
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            logger.experiment.add_image(key, pixels, global_step=step, dataformats="HWC")
    return path
