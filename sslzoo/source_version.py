"""Which code a run used: the git commit of the sslzoo source and whether its tree is dirty."""
from __future__ import annotations

import subprocess
from pathlib import Path

import lightning as L

UNKNOWN = "unknown"
PACKAGE_DIR = Path(__file__).resolve().parent


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def source_version(directory: Path = PACKAGE_DIR) -> dict[str, str | bool]:
    """{"git/commit": sha, "git/dirty": bool} for the checkout that holds `directory`, or
    "unknown" for both when it is not a tracked part of one (an installed wheel, no git binary,
    a venv inside some other repository). Never raises."""
    try:
        if not _git(directory, "ls-files", "--", "."):  # untracked here: not this package's checkout
            return {"git/commit": UNKNOWN, "git/dirty": UNKNOWN}
        commit = _git(directory, "rev-parse", "HEAD")
        dirty = bool(_git(directory, "status", "--porcelain", "--untracked-files=no"))
        return {"git/commit": commit, "git/dirty": dirty}
    except (OSError, subprocess.SubprocessError):  # not a repository, no git, a hung git: the run goes on
        return {"git/commit": UNKNOWN, "git/dirty": UNKNOWN}


class LogSourceVersion(L.Callback):
    """At fit start, give every logger the git commit of the sslzoo source and whether the
    tree had uncommitted changes ("git/commit", "git/dirty" hyper-parameters)."""

    def __init__(self, directory: str | Path = PACKAGE_DIR):
        self.directory = Path(directory)

    def on_fit_start(self, trainer, pl_module) -> None:
        version = source_version(self.directory)
        for logger in trainer.loggers:
            logger.log_hyperparams(version)
