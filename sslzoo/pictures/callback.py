"""The `ValidationPictures` callback: confusion matrix, t-SNE embedding and pseudo-label curves
at the end of validation, as PNGs in the run directory and images in W&B/TensorBoard."""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Subset

from ..callbacks import run_directory
from ..functional.clustering import confusion_counts
from ..methods.clustering_eval import ClusterMethod
from .confusion import confusion_table
from .drawing import draw_confusion, draw_curves, draw_embedding
from .embedding import subset_positions, tsne_2d
from .history import MetricHistory
from .output import publish_figure

CURVE_METRICS = ("train/pseudo_acc_masked", "train/pseudo_acc_all", "train/mask_rate")
MASKED_ACCURACY, MASK_RATE = "train/pseudo_acc_masked", "train/mask_rate"


def with_gaps(values: dict[str, float], mask_rate: float | None) -> dict[str, float]:
    """`values` with the masked pseudo-label accuracy NaN (a gap in its curve) at a step where no
    pseudo-label was confident: the method logs 0 there (an empty mean), which is no accuracy."""
    if MASKED_ACCURACY in values and mask_rate == 0:
        return {**values, MASKED_ACCURACY: float("nan")}
    return values


def evaluated_network_name(pl_module) -> str:
    """Which network the evaluation runs, for titles: the method's `eval_network_name`
    ("EMA", "teacher (EMA)", "online network", ...)."""
    named = getattr(pl_module, "eval_network_name", None)
    return named if isinstance(named, str) and named else "evaluated network"


class ValidationPictures(L.Callback):
    """Pictures at the end of validation, written to `<run directory>/pictures/<name>_step<N>.png`
    (rank 0) and logged as `pictures/<name>` to W&B and TensorBoard loggers.

    - `confusion_matrix`: true class x predicted class of the evaluated network (EMA/teacher when
      there is one; the title names it) over the whole validation set, from the logits
      `validation_step` returns (summed over processes); counts, or with `confusion_normalise`
      each true class's row as fractions. Clustering methods show clusters mapped to classes as
      their `val/cluster_acc` maps them (one-to-one Hungarian, or many-to-one when overclustering).
    - `embedding`: t-SNE of the evaluated network's backbone features (`eval_features`) for
      `embedding_points` validation images and `embedding_labeled_points` labeled training images
      (small stars beneath the validation points), a fixed random subset, coloured by true class. It costs a forward pass over those
      images and a few seconds of t-SNE, so it runs every `embedding_every_n_validations`.
    - `curves`: `curve_metrics` (whichever the method logs) recorded every `record_every_n_steps`
      training steps (default: the trainer's `log_every_n_steps`), so the same points the loggers
      get, against the global step; the masked pseudo-label accuracy has a gap where nothing was
      confident (mask rate 0). The record is in the checkpoint: after a resume the curve is the whole run.

    Pictures are drawn at the first validation of a fit and then every `every_n_validations`
    (the sanity check is skipped); `trainer.validate` draws them every time.
    """

    def __init__(
        self,
        confusion_matrix: bool = True,
        embedding: bool = True,
        curves: bool = True,
        every_n_validations: int = 1,
        embedding_every_n_validations: int = 10,
        embedding_points: int = 1000,
        embedding_labeled_points: int = 200,
        tsne_iterations: int = 500,
        seed: int = 0,
        curve_metrics: tuple[str, ...] | list[str] = CURVE_METRICS,
        record_every_n_steps: int | None = None,
        confusion_normalise: bool = False,
    ):
        if every_n_validations < 1 or embedding_every_n_validations < 1:
            raise ValueError("every_n_validations and embedding_every_n_validations must be >= 1")
        if embedding_points < 0 or embedding_labeled_points < 0:
            raise ValueError("embedding_points and embedding_labeled_points must be >= 0")
        if record_every_n_steps is not None and record_every_n_steps < 1:
            raise ValueError("record_every_n_steps must be >= 1 (or None for the trainer's log_every_n_steps)")
        self.confusion_matrix, self.embedding, self.curves = confusion_matrix, embedding, curves
        self.every_n_validations, self.embedding_every_n_validations = every_n_validations, embedding_every_n_validations
        self.embedding_points, self.embedding_labeled_points = embedding_points, embedding_labeled_points
        self.tsne_iterations, self.seed = tsne_iterations, seed
        self.curve_metrics, self.record_every_n_steps = tuple(curve_metrics), record_every_n_steps
        self.confusion_normalise = confusion_normalise
        self.history = MetricHistory()
        self.validations = 0  # fit validations seen (sanity check excluded), kept across a resume
        self._due: set[str] = set()
        self._counts: torch.Tensor | None = None

    # ---- curves: recorded during training ----------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        self.history.forget_after(trainer.global_step)  # a restart from an earlier checkpoint rewrites them

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        every = self.record_every_n_steps or max(trainer.log_every_n_steps, 1)
        last = max((pts[-1][0] for pts in self.history.points.values()), default=-1)
        if not self.curves or step % every or step <= last:
            return
        logged = trainer.callback_metrics
        values = {name: float(logged[name]) for name in self.curve_metrics if name in logged}
        if values:
            self.history.record(step, with_gaps(values, float(logged[MASK_RATE]) if MASK_RATE in logged else None))

    # ---- what this validation draws ---------------------------------------------------
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._due, self._counts = set(), None
        if trainer.sanity_checking:
            return
        wanted = {"confusion_matrix": self.confusion_matrix, "embedding": self.embedding, "curves": self.curves}
        if trainer.state.fn == "fit":
            self.validations += 1
            index = self.validations - 1
            if index % self.every_n_validations:
                return
            wanted["embedding"] &= index % self.embedding_every_n_validations == 0
        self._due = {name for name, on in wanted.items() if on}
        if "confusion_matrix" in self._due:
            self._counts = torch.zeros(self._num_outputs(pl_module), pl_module.num_classes, dtype=torch.long, device=pl_module.device)

    @staticmethod
    def _num_outputs(pl_module) -> int:
        return pl_module.num_clusters if isinstance(pl_module, ClusterMethod) else pl_module.num_classes

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._counts is None or dataloader_idx != 0:
            return
        logits = outputs.get("logits") if isinstance(outputs, dict) else outputs
        if not isinstance(logits, torch.Tensor):  # a validation_step that returns nothing
            logits = pl_module.eval_logits(batch["x"])
        if logits.shape[1] != self._counts.shape[0]:
            raise ValueError(
                f"validation_step gave {logits.shape[1]} outputs per image but {type(pl_module).__name__} has "
                f"{self._counts.shape[0]}; return the evaluated logits from validation_step"
            )
        self._counts += confusion_counts(logits.argmax(dim=1), batch["y"], *self._counts.shape)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._due:
            return
        counts = trainer.strategy.reduce(self._counts, reduce_op="sum") if self._counts is not None else None
        run_dir = run_directory(trainer)  # a collective under DDP: every process asks
        if not trainer.is_global_zero:
            return
        step, names = trainer.global_step, self._class_names(trainer)
        figures = {}
        if counts is not None:
            figures["confusion_matrix"] = self._confusion_figure(counts, pl_module, names, step)
        if "embedding" in self._due:
            figures["embedding"] = self._embedding_figure(trainer, pl_module, names, step)
        if "curves" in self._due and len(self.history):
            figures["pseudo_labels"] = draw_curves(self.history.series(), f"pseudo-labels up to step {step}")
        for name, figure in figures.items():
            if figure is not None:
                publish_figure(figure, name, step, run_dir, trainer.loggers)
                figure.clear()  # drop its artists now rather than at the next garbage collection
        self._counts = None

    def _confusion_figure(self, counts: torch.Tensor, pl_module, class_names, step: int):
        """The picture of the validation set's counts (all processes summed); None for an empty set."""
        if int(counts.sum()) == 0:
            return None
        table, xlabel = confusion_table(counts, isinstance(pl_module, ClusterMethod))
        title = f"{evaluated_network_name(pl_module)}, validation, step {step}"
        return draw_confusion(table, class_names, title, xlabel=xlabel, normalise=self.confusion_normalise)

    # ---- embedding ----------------------------------------------------------------------
    def _embedding_figure(self, trainer, pl_module, class_names, step):
        sets = [(self._val_dataset(trainer), self.embedding_points, False)]
        labeled = self._labeled_dataset(trainer)
        if labeled is not None:
            sets.append((labeled, self.embedding_labeled_points, True))
        features, labels, is_labeled = [], [], []
        try:
            for dataset, limit, flag in sets:
                if dataset is None or limit == 0:
                    continue
                f, y = self._features(pl_module, dataset, subset_positions(len(dataset), limit, self.seed), trainer)
                features.append(f)
                labels.append(y)
                is_labeled.append(np.full(len(y), flag))
        except NotImplementedError as error:
            rank_zero_warn(f"ValidationPictures: no embedding picture ({error}); the embedding is now off")
            self.embedding = False
            return None
        if not features or sum(len(f) for f in features) == 0:
            return None
        points = tsne_2d(np.concatenate(features), self.seed, iterations=self.tsne_iterations)
        return draw_embedding(points, np.concatenate(labels), np.concatenate(is_labeled), class_names, pl_module.num_classes, f"t-SNE of backbone features, step {step}")

    @torch.no_grad()
    def _features(self, pl_module, dataset, positions, trainer) -> tuple[np.ndarray, np.ndarray]:
        val_loader = self._val_loader(trainer)
        loader = DataLoader(
            Subset(dataset, positions.tolist()),
            batch_size=getattr(val_loader, "batch_size", None) or 256,
            num_workers=getattr(val_loader, "num_workers", 0),
            worker_init_fn=getattr(val_loader, "worker_init_fn", None),
        )
        features, labels = [], []
        for batch in loader:
            features.append(pl_module.eval_features(batch["x"].to(pl_module.device)).flatten(1).float().cpu())
            labels.append(batch["y"])
        return torch.cat(features).numpy(), torch.cat(labels).numpy()

    @staticmethod
    def _val_loader(trainer):
        loaders = trainer.val_dataloaders
        return loaders[0] if isinstance(loaders, (list, tuple)) else loaders

    def _val_dataset(self, trainer):
        return getattr(self._val_loader(trainer), "dataset", None)

    @staticmethod
    def _labeled_dataset(trainer):
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "labeled_dataloader") or not len(getattr(datamodule, "labeled_indices", ())):
            return None
        return datamodule.labeled_dataloader("eval").dataset

    @staticmethod
    def _class_names(trainer) -> tuple[str, ...]:
        info = getattr(getattr(trainer, "datamodule", None), "info", None)
        return tuple(getattr(info, "classes", ()) or ())

    # ---- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"history": self.history.state_dict(), "validations": self.validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history.load_state_dict(state_dict["history"])
        self.validations = int(state_dict["validations"])
