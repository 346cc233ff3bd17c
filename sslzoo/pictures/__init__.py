"""Pictures at the end of validation (confusion matrix, t-SNE embedding, pseudo-label curves)."""
from .callback import CURVE_METRICS, ValidationPictures
from .confusion import confusion_table
from .drawing import draw_confusion, draw_curves, draw_embedding
from .embedding import subset_positions, tsne_2d
from .history import MetricHistory
from .output import picture_path, publish_figure

__all__ = [
    "CURVE_METRICS",
    "MetricHistory",
    "ValidationPictures",
    "confusion_table",
    "draw_confusion",
    "draw_curves",
    "draw_embedding",
    "picture_path",
    "publish_figure",
    "subset_positions",
    "tsne_2d",
]
