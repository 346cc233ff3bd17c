"""Run summaries and the results table (`sslzoo report`).

`RunSummary` (a Lightning callback) is imported on first use, so `sslzoo report` starts
without importing Lightning."""
from .command import report
from .paper_results import PaperResult, find_paper_result, load_paper_results
from .summary_file import SUMMARY_FILE

__all__ = ["RunSummary", "SUMMARY_FILE", "PaperResult", "find_paper_result", "load_paper_results", "report"]


def __getattr__(name: str):
    if name == "RunSummary":
        from .run_summary import RunSummary

        return RunSummary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
