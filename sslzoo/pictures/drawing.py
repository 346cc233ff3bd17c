"""The pictures themselves: arrays in, matplotlib Figure out (nothing else is touched).

Figures come from `matplotlib.figure.Figure`, not pyplot, so no GUI backend is involved
and nothing is kept in pyplot's global figure list: a dropped figure is freed.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # non-interactive; the figures are only ever written to files and loggers

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

# Past these sizes tick labels, cell numbers and legends become unreadable, so they are left out.
MAX_ANNOTATED_CLASSES = 20
MAX_LEGEND_CLASSES = 20
POINT_SIZE, LABELED_STAR_SIZE = 10, 30  # marker areas (points^2) of the embedding's validation points and stars


def class_names_or_indices(class_names, num_classes: int) -> list[str]:
    names = list(class_names or ())
    return names if len(names) == num_classes else [str(c) for c in range(num_classes)]


def row_fractions(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class given each prediction); empty rows stay 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def draw_confusion(
    counts: np.ndarray, class_names=(), title: str = "", xlabel: str = "predicted class", ylabel: str = "true class", normalise: bool = False
) -> Figure:
    """Counts (rows: true class, columns: predicted) as an image, or with `normalise` each row as
    fractions of its true class (readable when the classes are unbalanced); for up to
    MAX_ANNOTATED_CLASSES classes, with class names on the axes and the value in every cell.
    The title's accuracy is of the counts either way."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"draw_confusion needs a square (classes x classes) count table, got shape {counts.shape}")
    num_classes = counts.shape[0]
    shown = row_fractions(counts) if normalise else counts
    size = min(4 + 0.45 * num_classes, 16)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shown, cmap="Blues", interpolation="nearest", **({"vmin": 0.0, "vmax": 1.0} if normalise else {}))
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class" if normalise else "images")
    total = counts.sum()
    accuracy = np.trace(counts) / total if total else float("nan")
    axes.set_title(f"{title}\naccuracy {accuracy:.1%} of {int(total)} images" if title else f"accuracy {accuracy:.1%} of {int(total)} images")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if num_classes <= MAX_ANNOTATED_CLASSES:
        names = class_names_or_indices(class_names, num_classes)
        axes.set_xticks(range(num_classes), names, rotation=45, ha="right", rotation_mode="anchor")
        axes.set_yticks(range(num_classes), names)
        threshold = shown.max() / 2 if shown.size else 0
        for (row, column), value in np.ndenumerate(shown):
            text = f"{value:.2f}" if normalise else str(int(value))
            axes.text(column, row, text, ha="center", va="center", fontsize=8, color="white" if value > threshold else "black")
    return figure


def class_colours(num_classes: int) -> np.ndarray:
    """One RGBA colour per class: tab10/tab20 when they suffice, evenly spaced hues otherwise."""
    if num_classes <= 10:
        return matplotlib.colormaps["tab10"](np.arange(num_classes))
    if num_classes <= 20:
        return matplotlib.colormaps["tab20"](np.arange(num_classes))
    return matplotlib.colormaps["hsv"](np.arange(num_classes) / num_classes)


def draw_embedding(points: np.ndarray, labels: np.ndarray, is_labeled: np.ndarray, class_names=(), num_classes: int | None = None, title: str = "") -> Figure:
    """2-D points coloured by true class; the labeled training images as small, half-transparent,
    black-edged stars drawn beneath the validation points, which they would otherwise hide (one
    scatter for the labeled points, then one for the rest)."""
    points, labels, is_labeled = np.asarray(points), np.asarray(labels), np.asarray(is_labeled, dtype=bool)
    if points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points) or len(is_labeled) != len(points):
        raise ValueError(
            f"draw_embedding needs (N, 2) points with N labels and N labeled flags, got {points.shape}, {labels.shape}, {is_labeled.shape}"
        )
    num_classes = num_classes or (int(labels.max()) + 1 if len(labels) else 1)
    colours = class_colours(num_classes)
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.add_subplot()
    rest = ~is_labeled
    axes.scatter(
        points[is_labeled, 0], points[is_labeled, 1], c=colours[labels[is_labeled]], s=LABELED_STAR_SIZE, marker="*",
        edgecolors="black", linewidths=0.4, alpha=0.6, zorder=1,
    )  # fmt: skip
    axes.scatter(points[rest, 0], points[rest, 1], c=colours[labels[rest]], s=POINT_SIZE, alpha=0.8, linewidths=0, zorder=2)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title or f"t-SNE of {int(rest.sum())} validation and {int(is_labeled.sum())} labeled images (stars)")
    if num_classes <= MAX_LEGEND_CLASSES:
        names = class_names_or_indices(class_names, num_classes)
        handles = [Line2D([], [], color=colours[c], marker="o", linestyle="", label=names[c]) for c in range(num_classes)]
        handles.append(Line2D([], [], color="white", marker="*", markersize=9, markeredgecolor="black", linestyle="", label="labeled"))
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    return figure


def draw_curves(series: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "pseudo-labels", ylabel: str = "fraction") -> Figure:
    """One line per named series of (steps, values) against the global step; a NaN value (nothing
    to measure at that step) is a gap in its line. The legend sits below the plot, off the lines."""
    if not series:
        raise ValueError("draw_curves needs at least one series")
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for name, (steps, values) in series.items():
        axes.plot(steps, values, label=name, linewidth=1.2, marker="." if len(steps) < 30 else None)
    axes.set_xlabel("global step")
    axes.set_ylabel(ylabel)
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.set_title(title)
    figure.legend(loc="outside lower center", ncols=min(len(series), 3), frameon=False)
    return figure
