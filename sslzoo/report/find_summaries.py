"""Find the run_summary.json files under run folders and pick what a table reports per run."""
from __future__ import annotations

import json
from pathlib import Path

from .summary_file import SUMMARY_FILE


class NoSummariesError(FileNotFoundError):
    pass


def read_summaries(run_dirs: list[str | Path]) -> list[dict]:
    """Every summary under each folder (recursively), each with its file as "path".
    A folder without any is an error that says how to make one."""
    summaries = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise NoSummariesError(f"{run_dir} is not a folder; give the trainer.default_root_dir of a run (e.g. runs/fixmatch/cifar10_40)")
        files = sorted(run_dir.rglob(SUMMARY_FILE))
        if not files:
            raise NoSummariesError(
                f"no {SUMMARY_FILE} under {run_dir}. Runs started with `sslzoo fit --config ...` write one into their "
                f"log folder after every validation; train (or `sslzoo test --ckpt_path ...`) a run into this folder first"
            )
        for file in files:
            summaries.append({**json.loads(file.read_text()), "path": str(file)})
    return summaries


def run_folder(summary: dict) -> Path:
    """The folder of the run a summary belongs to (its default_root_dir where it lies now):
    resumes and tests of one run write into versions of the same run folder."""
    path = Path(summary["path"]).parent
    inside = summary.get("log_dir_in_run")
    if inside is None:
        return path
    depth = len(Path(inside).parts) if inside not in ("", ".") else 0
    return path.parents[depth - 1] if depth else path


def newest(summaries: list[dict]) -> dict:
    return max(summaries, key=lambda s: (s.get("written_at", ""), s["path"]))


def latest_per_run(summaries: list[dict]) -> list[dict]:
    """One summary per run folder: the newest one written by `fit` (by written_at), with the test
    metrics of the newest summary that has any (noted with the step of the checkpoint tested).
    A run with no fit summary (only tested) reports its newest summary."""
    runs: dict[Path, list[dict]] = {}
    for summary in summaries:
        runs.setdefault(run_folder(summary), []).append(summary)
    merged = []
    for folder in sorted(runs):
        versions = runs[folder]
        fits = [s for s in versions if s.get("stage") == "fit"]
        row = dict(newest(fits or versions))
        tested = [s for s in versions if s.get("test")]
        if tested:
            test = newest(tested)
            row["test"], row["test_step"] = test["test"], test.get("global_step")
        merged.append(row)
    return merged
