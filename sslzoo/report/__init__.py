"""Run summaries and the results table (`sslzoo report`)."""
from .command import report
from .paper_results import PaperResult, find_paper_result, load_paper_results
from .run_summary import SUMMARY_FILE, RunSummary

__all__ = ["RunSummary", "SUMMARY_FILE", "PaperResult", "find_paper_result", "load_paper_results", "report"]
