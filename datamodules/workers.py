"""The default number of DataLoader workers: this process's share of the machine's CPUs."""
from __future__ import annotations

import os

MAX_DEFAULT_WORKERS = 8


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_num_workers(local_processes: int | None = None) -> int:
    """Workers per loader for one of `local_processes` training processes on this machine
    (default: LOCAL_WORLD_SIZE, else 1): its share of the CPUs less one for the process itself,
    capped. That is Lightning's own suggestion (`suggested_max_num_workers`), so its "does not
    have many workers" warning does not fire; 0 on a single-CPU machine."""
    if local_processes is None:
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    share = available_cpus() // max(1, local_processes)
    return max(0, min(MAX_DEFAULT_WORKERS, share - 1))
