"""`sslzoo report RUN_DIR... [--format markdown|csv] [--output FILE] [--all]`: the results table."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .find_summaries import NoSummariesError, latest_per_run, read_summaries, run_folder
from .paper_results import DEFAULT_PAPER_RESULTS, load_paper_results
from .table import row, to_csv, to_markdown


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslzoo report",
        description=(
            "Print a table of runs next to the papers' numbers. Reads every run_summary.json under each RUN_DIR "
            "(written by `sslzoo fit/test`). Per run folder it reports the newest fit summary (resumes continue "
            "the same summary) with the newest test result; --all reports every summary instead."
        ),
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a run's trainer.default_root_dir, or a folder of runs")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    parser.add_argument("--output", metavar="FILE", help="write the table here instead of printing it")
    parser.add_argument("--all", action="store_true", help="one row per summary file (every version of every run)")
    parser.add_argument("--paper-results", metavar="FILE", default=str(DEFAULT_PAPER_RESULTS), help="the table of published numbers (default: %(default)s)")
    return parser


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it, else absolute."""
    path = Path(os.path.abspath(path))
    cwd = Path.cwd()
    return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else str(path)


def report(run_dirs: list[str], table_format: str = "markdown", every_version: bool = False, paper_results_file: str | Path = DEFAULT_PAPER_RESULTS) -> str:
    summaries = read_summaries(run_dirs)
    if every_version:
        chosen = [(s, Path(s["path"]).parent) for s in sorted(summaries, key=lambda s: s["path"])]
    else:
        chosen = [(s, run_folder(s)) for s in latest_per_run(summaries)]
    if not Path(paper_results_file).is_file():
        raise FileNotFoundError(
            f"the table of published numbers {paper_results_file} is not there; pass --paper-results "
            "with experiments/paper_results.yml of the sslzoo repository"
        )
    paper_results = load_paper_results(paper_results_file)
    rows = [row(summary, display_path(folder), paper_results) for summary, folder in chosen]
    return to_csv(rows) if table_format == "csv" else to_markdown(rows)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        table = report(args.run_dirs, args.format, args.all, args.paper_results)
    except (NoSummariesError, FileNotFoundError, ValueError) as error:
        print(f"sslzoo report: error: {error}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(table)
    else:
        sys.stdout.write(table)
    return 0
