"""What `--ckpt_path` means for each subcommand, decided before anything is built."""
from __future__ import annotations

from pathlib import Path

from ..errors import ResumeRefused
from .resolve import CheckpointNotFoundError, existing_checkpoints, find_resumable, unreadable_reason

RESUME_WORDS = ("last", "auto")  # resolved here; other words ("best", "hpc", ...) go to Lightning as given


def resolve_ckpt_path(value: str | None, directory: Path, subcommand: str) -> tuple[str | None, list[str]]:
    """(the checkpoint file to load or None for a fresh fit, notes to print).

    fit:   None -> a fresh run, refused when `directory` already holds a run's checkpoints;
           last -> the newest readable last checkpoint, an error when there is none;
           auto -> like last when there is one, else a fresh run (for jobs that are requeued).
    validate/test/predict: a checkpoint is required (last/auto: the newest readable one).
    A file path must be a complete checkpoint.
    """
    directory = Path(directory)
    if value is None:
        if subcommand != "fit":
            raise CheckpointNotFoundError(
                f"`sslzoo {subcommand}` needs --ckpt_path (a checkpoint file, or `last` for {directory}/last.ckpt); "
                "without one it would evaluate an untrained network"
            )
        found = existing_checkpoints(directory)
        if found:
            raise ResumeRefused(
                f"{directory} already holds a run's checkpoints ({', '.join(p.name for p in found)}). "
                "Resume it with --ckpt_path last, or give this run its own --trainer.default_root_dir"
            )
        return None, []
    if value in RESUME_WORDS:
        path, notes = find_resumable(directory)
        if path is not None:
            return str(path), [*notes, f"resuming from {path}"]
        if value == "auto" and subcommand == "fit" and not existing_checkpoints(directory):
            return None, [f"--ckpt_path auto: no checkpoint in {directory} yet, starting a new run"]
        detail = "; ".join(notes) if notes else "it holds no last.ckpt"
        raise CheckpointNotFoundError(
            f"--ckpt_path {value}: nothing to resume in {directory} ({detail}). "
            + ("Drop --ckpt_path to start a new run, or pass a checkpoint file" if subcommand == "fit" else "Pass a checkpoint file")
        )
    path = Path(value)
    if path.is_file():
        reason = unreadable_reason(path)
        if reason is not None:
            raise CheckpointNotFoundError(f"{path} is not a complete checkpoint ({reason}); pass another file, or `last`")
    elif "://" not in value and value not in ("best", "hpc", "registry") and not value.startswith("registry:"):
        raise CheckpointNotFoundError(f"--ckpt_path {value}: no such file")
    return value, []
