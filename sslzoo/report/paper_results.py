"""The published numbers of the shipped configs (experiments/paper_results.yml) and their lookup."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

REPO_EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
DEFAULT_PAPER_RESULTS = REPO_EXPERIMENTS / "paper_results.yml"
PAPER_METRICS = ("acc", "cluster_acc", "nmi", "ari")


@dataclass(frozen=True)
class PaperResult:
    config: str  # relative to experiments/, posix
    metrics: dict[str, float]  # percent
    source: str
    labels: str | None = None
    note: str | None = None


def load_paper_results(path: str | Path = DEFAULT_PAPER_RESULTS) -> list[PaperResult]:
    """Read and check the table: known metric names, values in (0, 100], one entry per config."""
    entries = yaml.safe_load(Path(path).read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries (- config: ..., metrics: {{acc: ...}}, source: ...)")
    results, seen = [], set()
    for number, entry in enumerate(entries, 1):
        where = f"{path}, entry {number} ({entry.get('config', '?') if isinstance(entry, dict) else entry!r})"
        if not isinstance(entry, dict) or not {"config", "metrics", "source"} <= entry.keys():
            raise ValueError(f"{where}: every entry needs config, metrics and source")
        metrics = entry["metrics"]
        if not isinstance(metrics, dict) or not metrics or not set(metrics) <= set(PAPER_METRICS):
            raise ValueError(f"{where}: metrics must map some of {PAPER_METRICS} to percentages")
        for name, value in metrics.items():
            if not isinstance(value, (int, float)) or not 0 < value <= 100:
                raise ValueError(f"{where}: {name} = {value!r} is not a percentage in (0, 100]")
        if entry["config"] in seen:
            raise ValueError(f"{where}: a second entry for {entry['config']}")
        seen.add(entry["config"])
        labels = entry.get("labels")
        results.append(
            PaperResult(
                config=entry["config"],
                metrics={name: float(value) for name, value in metrics.items()},
                source=entry["source"],
                labels=None if labels is None else str(labels),
                note=entry.get("note"),
            )
        )
    return results


def config_name(config_file: str) -> str:
    """A config file as the table names it: its path under the last `experiments/` folder, else as given."""
    parts = PurePosixPath(Path(config_file).as_posix()).parts
    if "experiments" in parts:
        last = len(parts) - 1 - parts[::-1].index("experiments")
        return "/".join(parts[last + 1 :])
    return Path(config_file).as_posix()


def find_paper_result(config_files: list[str], labels: str | None, results: list[PaperResult]) -> PaperResult | None:
    """The published number for a run: the first of its config files with an entry, when the run's
    labels are the entry's (a config re-run with other labels is another experiment)."""
    by_config = {result.config: result for result in results}
    for config_file in config_files:
        name = config_name(config_file)
        result = by_config.get(name)
        if result is None:
            # A copy outside experiments/ (e.g. /tmp/fixmatch/cifar10_40.yaml) matches by its last two parts.
            result = next((r for r in results if name.endswith("/" + r.config)), None)
        if result is not None:
            return result if result.labels is None or result.labels == labels else None
    return None
