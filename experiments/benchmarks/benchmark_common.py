"""What the speed benchmarks share: peak-memory probes, timing summaries, machine facts and
running one measurement in a fresh child process (so allocator caches of one measurement do
not inflate the next)."""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class RSSPeak:
    """Peak resident set size while the context is open (sampled in a thread)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = current_rss_bytes()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())


def sync() -> None:
    """Wait for queued GPU work, so a wall-clock interval covers it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_time_summary(times: list[float], images: int) -> dict:
    """Median-based figures of a list of step times (seconds) for steps of `images` images."""
    median = statistics.median(times)
    return {
        "step_times_s": [round(t, 4) for t in times],
        "median_step_s": round(median, 4),
        "min_step_s": round(min(times), 4),
        "steps_per_s": round(1 / median, 4),
        "images_per_s": round(images / median, 2),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "load_average_at_start": os.getloadavg(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def run_child(script: str | Path, arguments: list[str]) -> dict:
    """Run `script arguments --result-file <tmp>` in a fresh interpreter; return the JSON it wrote there."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        subprocess.run([sys.executable, str(script), *arguments, "--result-file", str(result_file)], check=True)
        return json.loads(result_file.read_text())
