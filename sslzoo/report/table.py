"""The results table: one row per run summary, next to the paper's number, as markdown or CSV."""
from __future__ import annotations

import csv
import io

from .paper_results import PAPER_METRICS, PaperResult, config_name, find_paper_result
from .records import MEDIAN_WINDOW

COLUMNS = {
    "run": "run",
    "config": "config",
    "method": "method",
    "dataset": "dataset",
    "labels": "labels",
    "top1_best": "top-1 best",
    "top1_last": "top-1 last",
    "top1_median": "top-1 median last 20",
    "top1_test": "top-1 test",
    "cluster_acc": "cluster ACC",
    "nmi": "NMI",
    "ari": "ARI",
    "steps": "steps",
    "wall_time": "wall time",
    "paper": "paper",
    "delta": "Δ",
}
PAPER_METRIC_NAMES = {"acc": "", "cluster_acc": "ACC ", "nmi": "NMI ", "ari": "ARI "}


def percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}"


def wall_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def final_value(summary: dict, name: str) -> float | None:
    """What a run reached in a metric: its test value when it was tested, else its last validation."""
    if name in summary.get("test", {}):
        return summary["test"][name]
    return summary.get("val", {}).get(name, {}).get("last")


def clustering_acc_name(summary: dict) -> str:
    """cluster_acc, or its many-to-one form when the run overclusters."""
    logged = set(summary.get("test", {})) | set(summary.get("val", {}))
    return "cluster_acc" if "cluster_acc" in logged or "cluster_acc_many_to_one" not in logged else "cluster_acc_many_to_one"


def paper_columns(summary: dict, paper: PaperResult | None) -> tuple[str | None, str | None]:
    """The paper's numbers ("86.19", or "ACC 83.5 / NMI 73.1 / ARI 69.7") and ours minus theirs,
    in percentage points, ours being `final_value` (so never selected on the test set by "best")."""
    if paper is None:
        return None, None
    names = [name for name in PAPER_METRICS if name in paper.metrics]
    ours = {name: final_value(summary, clustering_acc_name(summary) if name == "cluster_acc" else name) for name in names}
    published = " / ".join(f"{PAPER_METRIC_NAMES[name]}{paper.metrics[name]:g}" for name in names)
    deltas = [None if ours[name] is None else f"{PAPER_METRIC_NAMES[name]}{100 * ours[name] - paper.metrics[name]:+.2f}" for name in names]
    return published, None if all(d is None for d in deltas) else " / ".join(d or "–" for d in deltas)


def best_cell(record: dict, val_split: str | None) -> str | None:
    """The best validation value; marked when validation was the test set (selected on test)."""
    best = percent(record.get("best"))
    return f"{best} (selected on test)" if best is not None and val_split == "test" else best


def median_cell(record: dict) -> str | None:
    """The median of the last evaluations (FixMatch's protocol), with their count when fewer than 20."""
    median = percent(record.get("median"))
    count = record.get("median_of")
    return f"{median} (of {count})" if median is not None and count is not None and count < MEDIAN_WINDOW else median


def row(summary: dict, run: str, paper_results: list[PaperResult]) -> dict[str, str | None]:
    config_files = summary.get("config_files") or []
    val_acc = summary.get("val", {}).get("acc", {})
    test_acc = percent(summary.get("test", {}).get("acc"))
    test_step = summary.get("test_step")
    if test_acc is not None and test_step is not None and test_step != summary.get("global_step"):
        test_acc += f" (step {test_step})"
    paper, delta = paper_columns(summary, find_paper_result(config_files, summary.get("labels"), paper_results))
    return {
        "run": run,
        "config": " + ".join(config_name(file) for file in config_files) or None,
        "method": summary.get("method"),
        "dataset": summary.get("dataset"),
        "labels": summary.get("labels"),
        "top1_best": best_cell(val_acc, summary.get("val_split")),
        "top1_last": percent(val_acc.get("last")),
        "top1_median": median_cell(val_acc),
        "top1_test": test_acc,
        "cluster_acc": percent(final_value(summary, clustering_acc_name(summary))),
        "nmi": percent(final_value(summary, "nmi")),
        "ari": percent(final_value(summary, "ari")),
        "steps": str(summary["global_step"]) if summary.get("global_step") is not None else None,
        "wall_time": wall_time(summary.get("fit_seconds")),
        "paper": paper,
        "delta": delta,
    }


def to_markdown(rows: list[dict[str, str | None]]) -> str:
    def cell(value: str | None) -> str:
        return "–" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[key]) for key in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, str | None]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS.values())
    writer.writerows([["" if r[key] is None else r[key] for key in COLUMNS] for r in rows])
    return out.getvalue()
